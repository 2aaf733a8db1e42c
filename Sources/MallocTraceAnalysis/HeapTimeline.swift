public import MallocTraceFormat

/// Bytes live on the heap over time, down-sampled to a bounded number of points: each point is the
/// highest live figure within its time bucket, and buckets double in width whenever there would be more
/// than `maximumPoints`. O(1) amortized per event; memory: the live blocks' sizes plus the points.
public struct HeapTimeline: Sendable {
    public struct Point: Sendable, Equatable {
        /// Start of the bucket, nanoseconds since the process started.
        public var time: UInt64
        /// The most bytes live at any moment within the bucket.
        public var liveBytes: UInt64
    }

    public let maximumPoints: Int
    /// Nanoseconds per bucket.
    public private(set) var bucketWidth: UInt64 = 1_000
    private var maxima: [UInt64] = []
    private var sizes: [UInt64: UInt64] = [:]
    private var live: UInt64 = 0

    public init(maximumPoints: Int = 600) {
        self.maximumPoints = max(2, maximumPoints)
    }

    public mutating func consume(_ events: Span<AllocatorEvent>) {
        for index in events.indices { consume(events[index]) }
    }

    public mutating func consume(_ event: AllocatorEvent) {
        switch event.kind {
        case .allocation:
            if let old = sizes.updateValue(event.size, forKey: event.address) { live -= min(live, old) }
            live &+= event.size
        case .release:
            guard let size = sizes.removeValue(forKey: event.address) else { return }
            live -= min(live, size)
        case .failedAllocation, .control:
            return
        }
        var bucket = Int(clamping: event.time / bucketWidth)
        while bucket >= maximumPoints {
            halve()
            bucket = Int(clamping: event.time / bucketWidth)
        }
        if bucket >= maxima.count {
            // Empty buckets in between hold what was live before this event.
            let carried = maxima.isEmpty ? 0 : current
            maxima += [UInt64](repeating: carried, count: bucket + 1 - maxima.count)
        }
        maxima[bucket] = max(maxima[bucket], live)
        current = live
    }

    private var current: UInt64 = 0

    /// Merges neighbouring buckets: twice the width, half the points.
    private mutating func halve() {
        var merged: [UInt64] = []
        merged.reserveCapacity(maxima.count / 2 + 1)
        var index = 0
        while index < maxima.count {
            merged.append(index + 1 < maxima.count ? max(maxima[index], maxima[index + 1]) : maxima[index])
            index += 2
        }
        maxima = merged
        bucketWidth *= 2
    }

    /// The points, oldest first.
    public var points: [Point] {
        maxima.enumerated().map { Point(time: UInt64($0.offset) * bucketWidth, liveBytes: $0.element) }
    }
}
