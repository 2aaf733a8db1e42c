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
    /// Time of the last event, nanoseconds since start.
    public var lastEventTime: UInt64 = 0
    public var threadCount: Int = 0
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
    }

    private var summary = HeapSummary()
    private var calls = [UInt64](repeating: 0, count: 16)
    private var live = AddressTable()
    private var sites: [SiteState] = []
    private var slotByStackID: [Int32] = []
    private var slotBySparseStackID: [UInt32: Int32] = [:]
    private var liveBytes: UInt64 = 0
    private var liveBlocks: UInt64 = 0
    private var eventNumber = 0
    private var peakEventNumber = 0
    private var threads = Set<UInt32>()

    /// Stack ids below this index an array; larger (only in damaged or hostile traces) a dictionary.
    private static let denseStackIDLimit: UInt32 = 1 << 22

    public init() {}

    private mutating func slot(for stackID: UInt32) -> Int {
        if stackID < Self.denseStackIDLimit {
            let index = Int(stackID)
            if index >= slotByStackID.count {
                slotByStackID.append(
                    contentsOf: repeatElement(-1, count: max(index + 1, slotByStackID.count * 2) - slotByStackID.count))
            }
            if slotByStackID[index] >= 0 { return Int(slotByStackID[index]) }
            slotByStackID[index] = Int32(sites.count)
        } else if let existing = slotBySparseStackID[stackID] {
            return Int(existing)
        } else {
            slotBySparseStackID[stackID] = Int32(sites.count)
        }
        sites.append(SiteState(statistics: SiteStatistics(stackID: stackID)))
        return sites.count - 1
    }

    private mutating func change(site: Int, bytes: UInt64, blocks: UInt64, adding: Bool) {
        if sites[site].lastChange <= peakEventNumber {
            sites[site].statistics.peakBytes = sites[site].liveBytes
            sites[site].statistics.peakBlocks = sites[site].liveBlocks
        }
        if adding {
            sites[site].liveBytes &+= bytes
            sites[site].liveBlocks &+= blocks
        } else {
            sites[site].liveBytes &-= bytes
            sites[site].liveBlocks &-= blocks
        }
        sites[site].lastChange = eventNumber
    }

    private mutating func release(address: UInt64) -> Bool {
        guard let block = live.remove(address) else { return false }
        change(site: Int(block.slot), bytes: block.size, blocks: 1, adding: false)
        liveBytes &-= block.size
        liveBlocks &-= 1
        return true
    }

    public mutating func consume(_ event: AllocatorEvent) {
        eventNumber += 1
        summary.lastEventTime = max(summary.lastEventTime, event.time)
        if threads.count < 1 << 16 { threads.insert(event.threadID) }
        if event.isPrimary { calls[Int(event.function.rawValue)] &+= 1 }
        switch event.kind {
        case .failedAllocation:
            summary.failedCalls &+= 1
        case .release:
            if event.isPrimary { summary.freeCalls &+= 1 }
            if !release(address: event.address) { summary.unmatchedFrees &+= 1 }
        case .allocation:
            summary.allocationCalls &+= 1
            summary.bytesAllocated &+= event.size
            let site = slot(for: event.stackID)
            sites[site].statistics.allocationCalls &+= 1
            sites[site].statistics.bytesAllocated &+= event.size
            // An address that is live already lost its free somewhere (untraced); drop the old block.
            _ = release(address: event.address)
            live.insert(event.address, size: event.size, slot: Int32(site))
            change(site: site, bytes: event.size, blocks: 1, adding: true)
            liveBytes &+= event.size
            liveBlocks &+= 1
            if liveBytes > summary.peakBytes {
                summary.peakBytes = liveBytes
                summary.peakBlocks = liveBlocks
                summary.peakTime = event.time
                peakEventNumber = eventNumber
            }
        }
    }

    /// The totals so far; the analyzer can keep consuming afterwards.
    public func result() -> HeapAnalysis {
        var summary = self.summary
        for function in AllocationFunction.allCases where calls[Int(function.rawValue)] > 0 {
            summary.callsByFunction[function] = calls[Int(function.rawValue)]
        }
        summary.leakedBytes = liveBytes
        summary.leakedBlocks = liveBlocks
        summary.threadCount = threads.count
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
