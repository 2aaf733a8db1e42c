import MallocTraceReports

/// The absolute limits of `--max-leaked`, `--max-peak` and `--max-allocations`; nil means no limit.
public struct CheckLimits: Sendable, Equatable {
    public var maxLeakedBytes: UInt64?
    public var maxPeakBytes: UInt64?
    public var maxAllocationCalls: UInt64?

    public init(maxLeakedBytes: UInt64? = nil, maxPeakBytes: UInt64? = nil, maxAllocationCalls: UInt64? = nil) {
        self.maxLeakedBytes = maxLeakedBytes
        self.maxPeakBytes = maxPeakBytes
        self.maxAllocationCalls = maxAllocationCalls
    }

    /// The limits `process` went over: leaked bytes are those of its findings (counted kinds, after
    /// suppressions). A figure equal to its limit is within it.
    public func evaluate(_ process: ProcessVerdict) -> [LimitViolation] {
        evaluate(
            leakedBytes: process.leakedBytes, peakBytes: process.peakBytes, allocationCalls: process.allocationCalls)
    }

    /// The limits the given figures went over, in the order leaked, peak, allocation calls.
    public func evaluate(leakedBytes: UInt64, peakBytes: UInt64, allocationCalls: UInt64) -> [LimitViolation] {
        var violations: [LimitViolation] = []
        if let limit = maxLeakedBytes, leakedBytes > limit {
            violations.append(
                LimitViolation(
                    limit: .leakedBytes, allowed: Double(limit), actual: Double(leakedBytes),
                    message: "leaked \(Self.size(leakedBytes)) is over --max-leaked \(Self.size(limit))"))
        }
        if let limit = maxPeakBytes, peakBytes > limit {
            violations.append(
                LimitViolation(
                    limit: .peakBytes, allowed: Double(limit), actual: Double(peakBytes),
                    message: "peak \(Self.size(peakBytes)) is over --max-peak \(Self.size(limit))"))
        }
        if let limit = maxAllocationCalls, allocationCalls > limit {
            violations.append(
                LimitViolation(
                    limit: .allocationCalls, allowed: Double(limit), actual: Double(allocationCalls),
                    message: "\(Formatting.counted(allocationCalls, "allocation call")) is over --max-allocations "
                        + Formatting.grouped(limit)))
        }
        return violations
    }

    /// `80.0 MiB (83,886,080 bytes)`; `96 B` below 1 KiB, where the short form is exact.
    static func size(_ bytes: UInt64) -> String {
        bytes < 1024 ? Formatting.bytes(bytes) : "\(Formatting.bytes(bytes)) (\(Formatting.counted(bytes, "byte")))"
    }
}
