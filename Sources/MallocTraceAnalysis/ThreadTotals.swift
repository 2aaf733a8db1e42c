public import MallocTraceFormat

/// Per-thread calls and bytes, keyed by the thread ids the trace recorded. O(1) per event (the places of
/// recently seen threads are cached by their ids' low bits); memory grows with the number of threads.
public struct ThreadTotals: Sendable {
    public struct Totals: Sendable, Equatable {
        public var threadID: UInt32
        /// Calls that returned a block (realloc included).
        public var allocationCalls: UInt64 = 0
        public var failedCalls: UInt64 = 0
        /// free() calls and realloc(p, 0) that released a block.
        public var freeCalls: UInt64 = 0
        public var bytesAllocated: UInt64 = 0
        /// Nanoseconds since start of the thread's first and last heap event.
        public var firstEventTime: UInt64
        public var lastEventTime: UInt64

        public init(threadID: UInt32, firstEventTime: UInt64, lastEventTime: UInt64) {
            self.threadID = threadID
            self.firstEventTime = firstEventTime
            self.lastEventTime = lastEventTime
        }
    }

    private var totals: [Totals] = []
    private var indexByThread: [UInt32: Int] = [:]
    /// Index in `totals` by the thread id's low bits, for the threads seen last: a trace of many threads
    /// switches thread every few events, and a dictionary lookup each time was a tenth of the pass.
    private var recentIndex = InlineArray<64, Int>(repeating: -1)

    public init() {}

    public mutating func consume(_ event: AllocatorEvent) {
        withUnsafePointer(to: event) { consume(UnsafeBufferPointer(start: $0, count: 1).span) }
    }

    /// Consumes consecutive events, updating the totals in place: one copy-on-write check per batch (and per
    /// new thread), not per event, however finely the threads interleave.
    public mutating func consume(_ events: Span<AllocatorEvent>) {
        // Moved out of `self` for the batch, so that the buffer and the caches can be used side by side.
        var totals: [Totals] = []
        swap(&totals, &self.totals)
        defer { swap(&totals, &self.totals) }
        var next = 0
        while next < events.count {
            next = totals.withUnsafeMutableBufferPointer { totals in
                add(events, from: next, to: totals)
            }
            if next < events.count {
                indexByThread[events[next].threadID] = totals.count
                totals.append(
                    Totals(
                        threadID: events[next].threadID, firstEventTime: events[next].time,
                        lastEventTime: events[next].time))
            }
        }
    }

    /// Adds `events[start...]` to `totals`; returns the index of the first event of a thread not seen
    /// before (left unconsumed), or the end.
    private mutating func add(
        _ events: Span<AllocatorEvent>, from start: Int, to totals: UnsafeMutableBufferPointer<Totals>
    ) -> Int {
        var thread = UInt32.max
        var index = -1
        for position in start..<events.count {
            let event = events[position]
            if event.threadID != thread || index < 0 {
                guard let known = self.index(of: event.threadID, in: totals) else { return position }
                thread = event.threadID
                index = known
            }
            Self.add(event, to: &totals[index])
        }
        return events.count
    }

    @inline(__always)
    private mutating func index(of thread: UInt32, in totals: UnsafeMutableBufferPointer<Totals>) -> Int? {
        let slot = Int(thread & 63)
        let cached = recentIndex[slot]
        if cached >= 0 && totals[cached].threadID == thread { return cached }
        guard let existing = indexByThread[thread] else { return nil }
        recentIndex[slot] = existing
        return existing
    }

    @inline(__always)
    private static func add(_ event: AllocatorEvent, to totals: inout Totals) {
        if event.time > totals.lastEventTime { totals.lastEventTime = event.time }
        switch event.kind {
        case .allocation:
            totals.allocationCalls &+= 1
            totals.bytesAllocated +|= event.size
        case .failedAllocation:
            totals.failedCalls &+= 1
        case .release:
            if event.isPrimary { totals.freeCalls &+= 1 }
        case .control:
            break
        }
    }

    /// Every thread that had a heap event, in order of first appearance.
    public var threads: [Totals] { totals }
}
