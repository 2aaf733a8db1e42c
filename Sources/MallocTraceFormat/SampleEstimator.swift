#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Scales the allocations of a sampled trace back up to estimates of the whole program.
///
/// A trace recorded with a sample rate R holds an allocation of s bytes with probability
/// p = 1 − e^(−s/R) (sampling by bytes, as tcmalloc and jemalloc do), so each recorded allocation
/// stands for s/p bytes and 1/p calls on average. The reader hands out allocations with ``AllocatorEvent/size``
/// already replaced by that estimate, so every byte figure computed from the events (totals, live bytes,
/// the peak, leaks) is an estimate with no further work; releases carry no size and need nothing.
public struct SampleEstimator: Sendable, Equatable {
    /// Mean bytes between sample points.
    public let rate: UInt64
    /// Σ 1/p over the allocations seen so far: the estimated number of allocation calls.
    public private(set) var estimatedAllocationCalls: Double = 0
    /// Allocations actually recorded.
    public private(set) var samples: UInt64 = 0

    public init(rate: UInt64) {
        precondition(rate > 0, "a sample rate is a positive number of bytes")
        self.rate = rate
    }

    /// The probability that an allocation of `size` bytes was recorded.
    public func probability(ofSampling size: UInt64) -> Double {
        -expm1(-Double(size) / Double(rate))
    }

    /// The estimated bytes one recorded allocation of `size` bytes stands for (at least `size`).
    public func estimatedBytes(forSampled size: UInt64) -> UInt64 {
        Self.estimatedBytes(size, probability: probability(ofSampling: size))
    }

    private static func estimatedBytes(_ size: UInt64, probability: Double) -> UInt64 {
        guard probability > 0 else { return 0 }
        let estimate = (Double(size) / probability).rounded()
        return estimate >= 0x1p63 ? UInt64(1) << 63 : max(size, UInt64(estimate))
    }

    /// Replaces the size of every allocation in `events` with its estimate (pool blocks are recorded in full).
    mutating func scale(_ events: UnsafeMutableBufferPointer<AllocatorEvent>) {
        for index in events.indices where events[index].kind == .allocation && events[index].poolID == 0 {
            let size = events[index].size
            let probability = probability(ofSampling: size)
            guard probability > 0 else { continue }
            samples &+= 1
            estimatedAllocationCalls += 1 / probability
            events[index].size = Self.estimatedBytes(size, probability: probability)
        }
    }
}
