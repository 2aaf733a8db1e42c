public import MallocTraceFormat

/// Totals for one allocation site (one interned call stack).
public struct SiteStatistics: Sendable, Equatable {
    public var stackID: UInt32
    /// Successful allocation calls from this site.
    public var allocationCalls: UInt64 = 0
    public var bytesAllocated: UInt64 = 0
    /// Bytes and blocks from this site that were live at the moment of the global peak.
    public var peakBytes: UInt64 = 0
    public var peakBlocks: UInt64 = 0
    /// Bytes and blocks never released before the trace ended.
    public var leakedBytes: UInt64 = 0
    public var leakedBlocks: UInt64 = 0
    /// The function of the site's first allocation (a call site calls one allocation function).
    public var function: AllocationFunction?

    public init(stackID: UInt32) { self.stackID = stackID }
}

/// Process-wide totals.
public struct HeapSummary: Sendable, Equatable {
    /// Calls that returned a block (realloc included).
    public var allocationCalls: UInt64 = 0
    /// Allocation calls that returned no block.
    public var failedCalls: UInt64 = 0
    /// free() of a non-NULL pointer, and realloc(p, 0).
    public var freeCalls: UInt64 = 0
    /// Every traced call, by function (failed ones included).
    public var callsByFunction: [AllocationFunction: UInt64] = [:]
    public var bytesAllocated: UInt64 = 0
    /// Largest sum of requested bytes live at once, exact in the global event order.
    public var peakBytes: UInt64 = 0
    public var peakBlocks: UInt64 = 0
    /// Nanoseconds since start at the peak.
    public var peakTime: UInt64 = 0
    public var leakedBytes: UInt64 = 0
    public var leakedBlocks: UInt64 = 0
    /// Releases of addresses the trace never saw allocated (allocated before tracing began, or by a
    /// signal handler that interrupted the tracer).
    public var unmatchedFrees: UInt64 = 0
    /// Releases of unknown addresses after the trace was paused (malloctrace_pause): blocks allocated while
    /// paused, whose releases the tracer could not tell apart. Neither frees nor unmatched frees.
    public var ignoredFrees: UInt64 = 0
    /// Time of the last event, nanoseconds since start.
    public var lastEventTime: UInt64 = 0
    public var threadCount: Int = 0

    public init() {}
}

/// The result of one pass over a trace.
public struct HeapAnalysis: Sendable {
    public var summary: HeapSummary
    /// Every site that allocated, in no particular order.
    public var sites: [SiteStatistics]
}

/// Aggregates heap events in one streaming pass; memory grows with the live blocks and distinct stacks,
/// never with the number of events. Feed events in sequence order (``TraceReader/forEachEvent(_:)``).
///
/// Peak contributors are exact: each site's live bytes at the global peak are captured lazily, when the
/// site next changes after a new peak (or at the end), so a pass costs O(1) per event.
public struct HeapAnalyzer {
    private struct SiteState {
        var statistics: SiteStatistics
        var liveBytes: UInt64 = 0
        var liveBlocks: UInt64 = 0
        /// Event number of this site's last change; compared with the peak's event number.
        var lastChange = 0

        /// Adds (or removes) one block. The first change after a new global peak first records the live
        /// figures, which are unchanged since the peak: the site's share of it.
        @inline(__always)
        mutating func change(bytes: UInt64, adding: Bool, eventNumber: Int, peakEventNumber: Int) {
            if lastChange <= peakEventNumber {
                statistics.peakBytes = liveBytes
                statistics.peakBlocks = liveBlocks
            }
            if adding {
                liveBytes &+= bytes
                liveBlocks &+= 1
            } else {
                liveBytes &-= bytes
                liveBlocks &-= 1
            }
            lastChange = eventNumber
        }

        @inline(__always)
        mutating func allocate(size: UInt64, function: AllocationFunction, eventNumber: Int, peakEventNumber: Int) {
            if statistics.allocationCalls == 0 { statistics.function = function }
            statistics.allocationCalls &+= 1
            statistics.bytesAllocated +|= size
            change(bytes: size, adding: true, eventNumber: eventNumber, peakEventNumber: peakEventNumber)
        }
    }

    /// The figures every event updates, all plain integers. `consume` works on a local copy for a whole
    /// batch: a local is not reachable through the table and site pointers the loop stores to, so the
    /// compiler can keep these in registers instead of reloading them after every store.
    private struct Running {
        var allocationCalls: UInt64 = 0
        var failedCalls: UInt64 = 0
        var freeCalls: UInt64 = 0
        var bytesAllocated: UInt64 = 0
        var unmatchedFrees: UInt64 = 0
        var ignoredFrees: UInt64 = 0
        var sawPause = false
        var liveBytes: UInt64 = 0
        var liveBlocks: UInt64 = 0
        var peakBytes: UInt64 = 0
        var peakBlocks: UInt64 = 0
        var peakTime: UInt64 = 0
        var lastEventTime: UInt64 = 0
        var eventNumber = 0
        var peakEventNumber = 0
        /// The thread of the previous event: consecutive events mostly share one, so `threads` is only
        /// updated when it changes.
        var lastThreadID: UInt32?
        /// What the look-ahead loads of the live table read, combined: kept so that they are not optimized away.
        var lookAhead: UInt64 = 0
    }

    /// Events whose live-table entries are loaded before any of them is handled (``consume(_:from:to:live:sites:)``).
    private static let lookAheadWindow = 64

    private var running = Running()
    /// Calls by `AllocationFunction.rawValue`; inline storage, so counting needs no copy-on-write check.
    private var calls = InlineArray<32, UInt64>(repeating: 0)
    /// Sparse on purpose: with few live blocks, probes that stop at the first entry are worth more than a
    /// table that fits in the first-level cache (measured on the churn benchmark).
    private var live = AddressTable()
    private var sites: [SiteState] = []
    private var slotByStackID: [Int32] = []
    private var slotBySparseStackID: [UInt32: Int32] = [:]
    /// Thread ids seen, sorted: a binary search is cheaper than hashing.
    private var threads: [UInt32] = []
    /// Ids known to be in `threads`, direct-mapped by their low bits: when threads interleave finely the
    /// thread changes at nearly every event, and one comparison here replaces the search. The initial
    /// value is no thread id.
    private var recentThreads = InlineArray<64, UInt64>(repeating: .max)
    /// More thread ids than this are not counted (a damaged trace could hold millions).
    private static let threadLimit = 1 << 16

    /// Stack ids below this index an array; larger (only in damaged or hostile traces) a dictionary.
    private static let denseStackIDLimit: UInt32 = 1 << 22

    public init() {}

    /// Consumes one event. ``consume(_:)-(Span<AllocatorEvent>)`` is faster for many.
    public mutating func consume(_ event: AllocatorEvent) {
        withUnsafePointer(to: event) { consume(UnsafeBufferPointer(start: $0, count: 1).span) }
    }

    /// Consumes consecutive events, as ``TraceReader/forEachEventBatch(_:)`` delivers them.
    ///
    /// The live table and the sites are moved out of `self` for the batch and updated in place through
    /// pointers taken once per batch, not once per event (each would cost a copy-on-write check). The
    /// sites' pointer is given up only to add a site for a stack met for the first time.
    public mutating func consume(_ events: Span<AllocatorEvent>) {
        var live = AddressTable(capacity: 0)
        var sites: [SiteState] = []
        swap(&live, &self.live)
        swap(&sites, &self.sites)
        defer {
            swap(&live, &self.live)
            swap(&sites, &self.sites)
        }
        // Room for the batch's allocations is reserved up front: the table cannot grow while its entries
        // are borrowed.
        live.reserve(additional: events.count)
        var next = 0
        while next < events.count {
            next = live.withEntries { table in
                sites.withUnsafeMutableBufferPointer { sites in
                    consume(events, from: next, to: events.count, live: &table, sites: sites)
                }
            }
            if next < events.count { addSite(for: events[next].stackID, to: &sites) }
        }
    }

    /// Consumes `events[start..<end]`; returns `end`, or the index of an allocation whose stack has no
    /// site yet (which it leaves unconsumed).
    private mutating func consume(
        _ events: Span<AllocatorEvent>, from start: Int, to end: Int, live: inout AddressTable.Entries,
        sites: UnsafeMutableBufferPointer<SiteState>
    ) -> Int {
        var running = self.running
        defer { self.running = running }
        var windowEnd = start
        for index in start..<end {
            if index == windowEnd {
                // Independent loads: the next window's probes miss the cache together, not one after another.
                windowEnd = min(index + Self.lookAheadWindow, end)
                for ahead in index..<windowEnd { running.lookAhead ^= live.keyAtHome(of: events[ahead].address) }
            }
            let event = events[index]
            var site = 0
            if event.kind == .allocation {
                guard let known = slot(for: event.stackID) else { return index }
                site = known
            }
            running.eventNumber &+= 1
            running.lastEventTime = max(running.lastEventTime, event.time)
            if event.threadID != running.lastThreadID {
                running.lastThreadID = event.threadID
                let cacheIndex = Int(event.threadID & 63)
                if recentThreads[cacheIndex] != UInt64(event.threadID) {
                    noteThread(event.threadID)
                    recentThreads[cacheIndex] = UInt64(event.threadID)
                }
            }
            if event.isPrimary { calls[Int(event.function.rawValue)] &+= 1 }
            switch event.kind {
            case .failedAllocation:
                running.failedCalls &+= 1
            case .release:
                if let block = live.remove(event.address) {
                    if event.isPrimary { running.freeCalls &+= 1 }
                    Self.release(block, sites: sites, running: &running)
                } else if running.sawPause {
                    // Most likely a block allocated while paused: not a call the trace covers.
                    if event.isPrimary { calls[Int(event.function.rawValue)] &-= 1 }
                    running.ignoredFrees &+= 1
                } else {
                    if event.isPrimary { running.freeCalls &+= 1 }
                    running.unmatchedFrees &+= 1
                }
            case .control:
                if event.function == .pause { running.sawPause = true }
            case .allocation:
                running.allocationCalls &+= 1
                running.bytesAllocated +|= event.size
                // An address that is live already lost its free somewhere (untraced): drop the old block.
                if let lost = live.insert(event.address, size: event.size, slot: Int32(site)) {
                    Self.release(lost, sites: sites, running: &running)
                }
                sites[site].allocate(
                    size: event.size, function: event.function, eventNumber: running.eventNumber,
                    peakEventNumber: running.peakEventNumber)
                running.liveBytes &+= event.size
                running.liveBlocks &+= 1
                if running.liveBytes > running.peakBytes {
                    running.peakBytes = running.liveBytes
                    running.peakBlocks = running.liveBlocks
                    running.peakTime = event.time
                    running.peakEventNumber = running.eventNumber
                }
            }
        }
        return end
    }

    @inline(__always)
    private static func release(
        _ block: (size: UInt64, slot: Int32), sites: UnsafeMutableBufferPointer<SiteState>, running: inout Running
    ) {
        sites[Int(block.slot)].change(
            bytes: block.size, adding: false, eventNumber: running.eventNumber,
            peakEventNumber: running.peakEventNumber)
        running.liveBytes &-= block.size
        running.liveBlocks &-= 1
    }

    private mutating func noteThread(_ id: UInt32) {
        var low = 0
        var high = threads.count
        while low < high {
            let middle = (low + high) / 2
            if threads[middle] < id { low = middle + 1 } else { high = middle }
        }
        if low < threads.count && threads[low] == id { return }
        if threads.count < Self.threadLimit { threads.insert(id, at: low) }
    }

    /// The site of `stackID`, if it has one.
    @inline(__always)
    private func slot(for stackID: UInt32) -> Int? {
        if stackID < slotByStackID.count {
            let slot = slotByStackID[Int(stackID)]
            return slot >= 0 ? Int(slot) : nil
        }
        return slotBySparseStackID[stackID].map(Int.init)
    }

    private mutating func addSite(for stackID: UInt32, to sites: inout [SiteState]) {
        let slot = Int32(sites.count)
        if stackID < Self.denseStackIDLimit {
            let index = Int(stackID)
            if index >= slotByStackID.count {
                slotByStackID.append(
                    contentsOf: repeatElement(-1, count: max(index + 1, slotByStackID.count * 2) - slotByStackID.count))
            }
            slotByStackID[index] = slot
        } else {
            slotBySparseStackID[stackID] = slot
        }
        sites.append(SiteState(statistics: SiteStatistics(stackID: stackID)))
    }

    /// Calls `body` with every block live now: its address, requested size and the stack that allocated it.
    /// O(table capacity).
    public func forEachLiveBlock(_ body: (_ address: UInt64, _ size: UInt64, _ stackID: UInt32) -> Void) {
        live.forEach { address, size, slot in body(address, size, sites[Int(slot)].statistics.stackID) }
    }

    /// Every live block classified by a leak scan: the whole breakdown and one per allocating stack (only
    /// stacks with live blocks appear). O(table capacity × log scanned blocks).
    public func leakBreakdown(by scan: LeakScan) -> (total: LeakBreakdown, byStack: [UInt32: LeakBreakdown]) {
        var total = LeakBreakdown()
        var byStack: [UInt32: LeakBreakdown] = [:]
        forEachLiveBlock { address, size, stackID in
            let kind = scan.kind(ofBlockAt: address, stackID: stackID)
            total.add(kind, bytes: size)
            byStack[stackID, default: LeakBreakdown()].add(kind, bytes: size)
        }
        return (total, byStack)
    }

    /// The totals so far; the analyzer can keep consuming afterwards.
    public func result() -> HeapAnalysis {
        var summary = HeapSummary()
        summary.allocationCalls = running.allocationCalls
        summary.failedCalls = running.failedCalls
        summary.freeCalls = running.freeCalls
        summary.bytesAllocated = running.bytesAllocated
        summary.unmatchedFrees = running.unmatchedFrees
        summary.ignoredFrees = running.ignoredFrees
        summary.peakBytes = running.peakBytes
        summary.peakBlocks = running.peakBlocks
        summary.peakTime = running.peakTime
        summary.lastEventTime = running.lastEventTime
        summary.leakedBytes = running.liveBytes
        summary.leakedBlocks = running.liveBlocks
        for function in AllocationFunction.allCases where calls[Int(function.rawValue)] > 0 {
            summary.callsByFunction[function] = calls[Int(function.rawValue)]
        }
        summary.threadCount = threads.count
        let peakEventNumber = running.peakEventNumber
        let sites = self.sites.map { state -> SiteStatistics in
            var statistics = state.statistics
            if state.lastChange <= peakEventNumber {
                statistics.peakBytes = state.liveBytes
                statistics.peakBlocks = state.liveBlocks
            }
            statistics.leakedBytes = state.liveBytes
            statistics.leakedBlocks = state.liveBlocks
            return statistics
        }
        return HeapAnalysis(summary: summary, sites: sites)
    }
}
