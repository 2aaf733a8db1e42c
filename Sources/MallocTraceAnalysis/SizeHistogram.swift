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
    }

    private var calls = [UInt64](repeating: 0, count: 65)
    private var bytes = [UInt64](repeating: 0, count: 65)

    public init() {}

    public mutating func consume(_ event: AllocatorEvent) {
        guard event.kind == .allocation else { return }
        let index = 64 - event.size.leadingZeroBitCount
        calls[index] &+= 1
        bytes[index] &+= event.size
    }

    /// The buckets with at least one allocation, smallest sizes first.
    public var buckets: [Bucket] {
        calls.indices.compactMap { index in
            guard calls[index] > 0 else { return nil }
            let minimum: UInt64 = index == 0 ? 0 : 1 << (index - 1)
            let maximum: UInt64 = index == 0 ? 0 : (index == 64 ? UInt64.max : (1 << index) - 1)
            return Bucket(
                minimumSize: minimum, maximumSize: maximum, allocationCalls: calls[index], bytes: bytes[index])
        }
    }
}
