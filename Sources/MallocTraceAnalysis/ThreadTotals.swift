public import MallocTraceFormat

/// Per-thread calls and bytes, keyed by the thread ids the trace recorded. O(1) per event (events come in
/// runs of one thread, so the last thread's slot is cached); memory grows with the number of threads.
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
    }

    private var totals: [Totals] = []
    private var indexByThread: [UInt32: Int] = [:]
    /// Index in `totals` by the thread id's low bits, for the threads seen last: a trace of many threads
    /// switches thread every few events, and a dictionary lookup each time was a tenth of the pass.
    private var recentIndex = [Int](repeating: -1, count: 64)
    /// The thread of the latest event, updated in place and written back when another thread comes.
    private var current: Totals?
    private var currentIndex = -1

    public init() {}

    public mutating func consume(_ event: AllocatorEvent) {
        if current?.threadID != event.threadID { switchThread(to: event) }
        guard var totals = current else { return }
        current = nil  // keeps the update in place
        Self.add(event, to: &totals)
        current = totals
    }

    /// Consumes consecutive events: each run of one thread's events updates that thread's totals in place.
    public mutating func consume(_ events: Span<AllocatorEvent>) {
        var index = 0
        while index < events.count {
            if current?.threadID != events[index].threadID { switchThread(to: events[index]) }
            guard var totals = current else { return }
            current = nil
            while index < events.count && events[index].threadID == totals.threadID {
                Self.add(events[index], to: &totals)
                index += 1
            }
            current = totals
        }
    }

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

    private mutating func switchThread(to event: AllocatorEvent) {
        if let current, currentIndex >= 0 { totals[currentIndex] = current }
        let slot = Int(event.threadID & 63)
        let cached = recentIndex[slot]
        if cached >= 0 && totals[cached].threadID == event.threadID {
            currentIndex = cached
        } else if let existing = indexByThread[event.threadID] {
            currentIndex = existing
        } else {
            currentIndex = totals.count
            totals.append(Totals(threadID: event.threadID, firstEventTime: event.time, lastEventTime: event.time))
            indexByThread[event.threadID] = currentIndex
        }
        recentIndex[slot] = currentIndex
        current = totals[currentIndex]
    }

    /// Every thread that had a heap event, in order of first appearance.
    public var threads: [Totals] {
        var result = totals
        if let current, currentIndex >= 0 { result[currentIndex] = current }
        return result
    }
}
