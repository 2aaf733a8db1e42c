import Foundation
import MallocTraceAnalysis
public import MallocTraceFormat
import MallocTraceSymbolication

/// One profile of ``IntervalProfiler``: what a collector stores, and what it covers.
public struct IntervalProfile: Sendable {
    /// The gzip-compressed pprof `Profile`.
    public var bytes: [UInt8]
    /// 1 for the first interval, then 2, 3, ...
    public var number: Int
    /// Nanoseconds since the process started: the profile covers the events after `start` (from 0 for the
    /// first) up to and including `end`, the moment its `inuse_*` figures describe.
    public var start: UInt64
    public var end: UInt64
    /// `end` in seconds, as `report --to` takes it: that report counts the same blocks in use.
    public var endSeconds: Double
    public var process: ProcessDetails?
    /// Live at `end`, all stacks together (estimates in a sampled trace).
    public var inUseBytes: UInt64
    public var inUseBlocks: UInt64
}

/// Makes the pprof profiles of consecutive intervals of one trace while the process that writes it still
/// runs (`run --profile-every`): each one holds the blocks in use at the end of its interval (`inuse_*`) and
/// what was allocated during it (`alloc_*`), per call stack.
///
/// The trace is a shared file mapping that the process fills in place. Each profile opens it afresh and reads
/// every event stamped at or before the interval's end, exactly the events `report --to END` selects, so the
/// two count the same blocks in use. That is complete only when every such event is in the file: the caller
/// waits until the process's clock is past the end by more than an event takes to be written (a coarse-clock
/// tick and the in-flight instant between reading the clock and publishing the event), and the library must
/// read the clock for every event (`MALLOCTRACE_CLOCK_EVERY=1`: otherwise a thread that was idle across the end
/// stamps some of its next events with a time before it). A cut by time is also consistent: a block's release
/// is stamped no earlier than its allocation, so no release is counted without its block.
///
/// Cost: each profile reads the trace from its start (one pass, O(events so far)); the allocations of one
/// interval are the difference of two consecutive passes' per-stack totals. With `--sample-rate` a trace holds
/// few events and this stays small; a full trace of a busy program grows by megabytes a second.
public final class IntervalProfiler {
    private let tracePath: String
    private let options: ReportOptions
    private let symbolizer: Symbolizer
    private var allocatedBefore: [UInt32: (calls: UInt64, bytes: UInt64)] = [:]
    private var previousEnd: UInt64?
    private var count = 0

    /// `options`: the symbolizer and whether allocator frames are kept; their filters are not used.
    public init(tracePath: String, options: ReportOptions = ReportOptions()) {
        self.tracePath = tracePath
        var options = options
        options.filters = ReportFilters()
        // In use means every live block, whatever a leak scan at exit would call it.
        options.leakKinds = Set(LeakKind.allCases)
        self.options = options
        symbolizer = Symbolizer(backend: options.symbolizer)
    }

    /// The process facts of the trace, once its first record is written (nil before that).
    public static func process(ofTrace path: String) -> ProcessDetails? {
        (try? TraceReader(path: path))?.process
    }

    /// Reads the trace as it is now and makes the next interval's profile, up to `end` nanoseconds since the
    /// process started, or up to the end of the trace when `end` is nil (the process has exited).
    public func nextProfile(upTo end: UInt64?) throws(TraceError) -> IntervalProfile {
        let reader = try TraceReader(path: tracePath)
        symbolizer.traceStart = reader.process?.startRealtime
        var filters = ReportFilters()
        var endSeconds = Double.infinity
        if let end {
            endSeconds = Double(end) / 1e9
            filters.to = endSeconds
        }
        var pass = TracePass.run(
            reader: reader, filters: filters, temporaryThreshold: options.temporaryThreshold, symbolizer: symbolizer,
            countsSizes: false, countsThreads: false, countedLeakKinds: options.leakKinds)
        let cut =
            end.map { _ in ReportFilters.nanoseconds(endSeconds) }
            ?? max(reader.end?.time ?? 0, pass.summary.lastEventTime, previousEnd ?? 0)
        if end == nil { endSeconds = Double(cut) / 1e9 }
        // The allocations of this interval: this pass's totals per stack less the previous pass's.
        var inUse = (bytes: UInt64(0), blocks: UInt64(0))
        for (id, figures) in pass.sites {
            let before = allocatedBefore[id] ?? (0, 0)
            allocatedBefore[id] = (figures.allocationCalls, figures.bytesAllocated)
            var interval = SiteFigures()
            interval.allocationCalls = figures.allocationCalls &- min(before.calls, figures.allocationCalls)
            interval.bytesAllocated = figures.bytesAllocated &- min(before.bytes, figures.bytesAllocated)
            interval.leakedBlocks = figures.leakedBlocks
            interval.leakedBytes = figures.leakedBytes
            interval.function = figures.function
            inUse.bytes &+= figures.leakedBytes
            inUse.blocks &+= figures.leakedBlocks
            pass.sites[id] = interval
        }
        let presenter = StackPresenter(
            reader: reader, symbolizer: symbolizer, keepsAllocatorFrames: options.keepsAllocatorFrames)
        let profile = StackProfile(pass: pass, presenter: presenter)
        count += 1
        let start = previousEnd ?? 0
        previousEnd = cut
        let description = Self.describe(
            process: reader.process, number: count, start: start, end: cut, endSeconds: endSeconds,
            isFinal: end == nil, sampling: reader.sampling)
        let bytes: [UInt8]
        do {
            bytes = try Gzip.compress(PprofExporter.profile(profile, inUse: .exit, description: description))
        } catch {
            throw .cannotOpen(path: tracePath, reason: error.description)
        }
        return IntervalProfile(
            bytes: bytes, number: count, start: start, end: cut, endSeconds: endSeconds, process: reader.process,
            inUseBytes: inUse.bytes, inUseBlocks: inUse.blocks)
    }

    /// The process's identity and the interval, as the profile's comments.
    private static func describe(
        process: ProcessDetails?, number: Int, start: UInt64, end: UInt64, endSeconds: Double, isFinal: Bool,
        sampling: SampleEstimator?
    ) -> PprofExporter.Description {
        var comments: [String] = []
        if let process {
            comments.append(
                "malloctrace: pid \(process.pid), parent pid \(process.parentPID), exe \(process.executable)")
            comments.append("argv: " + process.arguments.joined(separator: " "))
            let started = Date(timeIntervalSince1970: Double(process.startRealtime) / 1e9)
            comments.append("process start: \(Self.timestamp(started)) (\(process.startRealtime) ns since the epoch)")
        }
        let range = "\(Double(start) / 1e9) s to \(endSeconds) s after the process started"
        comments.append(
            "profile \(number)\(isFinal ? " (final: the process ended)" : ""): \(range);"
                + " `malloctrace report TRACE --to \(endSeconds)` counts the same blocks in use")
        if let sampling {
            comments.append("sampled: one sample point per \(sampling.rate) bytes on average; figures are estimates")
        }
        let time = process.map { $0.startRealtime &+ end }
        return PprofExporter.Description(
            comments: comments,
            inUseMeaning: "inuse_*: live at the end of the interval; alloc_*: allocated during the interval",
            time: time, duration: end &- min(start, end))
    }

    /// UTC, to the millisecond, as ISO 8601.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
