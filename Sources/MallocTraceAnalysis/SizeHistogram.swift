public import MallocTraceFormat

/// Allocation calls and bytes by requested size, in power-of-two buckets: bucket 0 holds size 0, bucket
/// k ≥ 1 holds sizes 2^(k-1) … 2^k − 1 (so 1, 2–3, 4–7, …). O(1) per event, 65 buckets.
public struct SizeHistogram: Sendable, Equatable {
    public struct Bucket: Sendable, Equatable {
        /// Smallest and largest size the bucket holds.
        public var minimumSize: UInt64
        public var maximumSize: UInt64
        public var allocationCalls: UInt64
        public var bytes: UInt64

        public init(minimumSize: UInt64, maximumSize: UInt64, allocationCalls: UInt64, bytes: UInt64) {
            self.minimumSize = minimumSize
            self.maximumSize = maximumSize
            self.allocationCalls = allocationCalls
            self.bytes = bytes
        }
    }

    /// Calls of bucket k at 2k, bytes at 2k + 1: one array, so one uniqueness check per event.
    private var counts = [UInt64](repeating: 0, count: 130)

    public init() {}

    public mutating func consume(_ event: AllocatorEvent) {
        guard event.kind == .allocation else { return }
        let index = 2 * (64 - event.size.leadingZeroBitCount)
        counts.withUnsafeMutableBufferPointer { buffer in
            buffer[index] &+= 1
            buffer[index + 1] &+= event.size
        }
    }

    /// Consumes consecutive events (one copy-on-write check per batch, not per event).
    public mutating func consume(_ events: Span<AllocatorEvent>) {
        counts.withUnsafeMutableBufferPointer { buffer in
            for index in events.indices where events[index].kind == .allocation {
                let size = events[index].size
                let bucket = 2 * (64 - size.leadingZeroBitCount)
                buffer[bucket] &+= 1
                buffer[bucket + 1] &+= size
            }
        }
    }

    /// The buckets with at least one allocation, smallest sizes first.
    public var buckets: [Bucket] {
        (0..<65).compactMap { index in
            let calls = counts[2 * index], bytes = counts[2 * index + 1]
            guard calls > 0 else { return nil }
            let minimum: UInt64 = index == 0 ? 0 : 1 << (index - 1)
            let maximum: UInt64 = index == 0 ? 0 : (index == 64 ? UInt64.max : (1 << index) - 1)
            return Bucket(
                minimumSize: minimum, maximumSize: maximum, allocationCalls: calls, bytes: bytes)
        }
    }
}
