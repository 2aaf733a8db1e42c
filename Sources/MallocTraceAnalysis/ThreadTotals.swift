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
    private var lastThread: UInt32 = 0
    private var lastIndex = -1

    public init() {}

    public mutating func consume(_ event: AllocatorEvent) {
        let index: Int
        if event.threadID == lastThread && lastIndex >= 0 {
            index = lastIndex
        } else if let existing = indexByThread[event.threadID] {
            index = existing
        } else {
            index = totals.count
            totals.append(Totals(threadID: event.threadID, firstEventTime: event.time, lastEventTime: event.time))
            indexByThread[event.threadID] = index
        }
        lastThread = event.threadID
        lastIndex = index
        totals[index].lastEventTime = max(totals[index].lastEventTime, event.time)
        switch event.kind {
        case .allocation:
            totals[index].allocationCalls &+= 1
            totals[index].bytesAllocated &+= event.size
        case .failedAllocation:
            totals[index].failedCalls &+= 1
        case .release:
            if event.isPrimary { totals[index].freeCalls &+= 1 }
        }
    }

    /// Every thread that had a heap event, in order of first appearance.
    public var threads: [Totals] { totals }
}
