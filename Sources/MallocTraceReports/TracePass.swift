public import MallocTraceAnalysis
public import MallocTraceFormat
public import MallocTraceSymbolication

/// Everything reports and diffs need per allocation site (one stack id), after the single pass.
public struct SiteFigures: Sendable, Equatable {
    public var allocationCalls: UInt64 = 0
    public var bytesAllocated: UInt64 = 0
    /// Live at the moment of the global peak.
    public var peakBytes: UInt64 = 0
    public var peakBlocks: UInt64 = 0
    /// Never released before the trace (or the time window) ended.
    public var leakedBytes: UInt64 = 0
    public var leakedBlocks: UInt64 = 0
    public var temporaryAllocations: UInt64 = 0
    public var temporaryBytes: UInt64 = 0
    /// The live blocks at the end by leak kind; ``leakedBytes`` and ``leakedBlocks`` count only the kinds
    /// the report counts (all of them when the trace has no leak scan).
    public var leakKinds = LeakBreakdown()
    /// The function of the site's first allocation.
    public var function: AllocationFunction?

    public init() {}

    /// The analyzer's figures for one site; temporary allocations come from their own counter.
    public init(_ site: SiteStatistics) {
        allocationCalls = site.allocationCalls
        bytesAllocated = site.bytesAllocated
        peakBytes = site.peakBytes
        peakBlocks = site.peakBlocks
        leakedBytes = site.leakedBytes
        leakedBlocks = site.leakedBlocks
        function = site.function
    }

    public static func += (total: inout SiteFigures, part: SiteFigures) {
        total.allocationCalls &+= part.allocationCalls
        total.bytesAllocated +|= part.bytesAllocated
        total.peakBytes &+= part.peakBytes
        total.peakBlocks &+= part.peakBlocks
        total.leakedBytes &+= part.leakedBytes
        total.leakedBlocks &+= part.leakedBlocks
        total.temporaryAllocations &+= part.temporaryAllocations
        total.temporaryBytes &+= part.temporaryBytes
        if !part.leakKinds.isEmpty { total.leakKinds += part.leakKinds }
        if total.function == nil { total.function = part.function }
    }
}

/// The result of reading one trace: all accumulators of the single pass, plus the reader's tables.
public struct TracePass {
    public var reader: TraceReader
    public var summary: HeapSummary
    public var sites: [UInt32: SiteFigures]
    public var temporaryAllocations: UInt64
    public var temporaryBytes: UInt64
    public var histogram: SizeHistogram
    public var threads: ThreadTotals
    /// Every block live at the end, by leak kind (all unclassified when the trace has no leak scan).
    public var leakKinds: LeakBreakdown
    /// The leak kinds that count as leaked in ``summary`` and the sites.
    public var countedLeakKinds: Set<LeakKind>
    /// Requested against usable bytes and where blocks came from, when the pass was asked for it.
    public var allocatorView: AllocatorView?
    /// A mark or snapshot bound of the filters that the trace never reached (see ``checkMarks()``).
    public var missingMark: EventFilter.MarkBound?

    /// Reads every event once, feeding the heap analysis and the smaller accumulators; `filters` select
    /// the allocations in the same pass. Stack patterns need frames while reading: they are resolved with
    /// `symbolizer` as each stack is defined.
    /// `countsSizes` and `countsThreads` turn the histogram and the per-thread totals on (they cost time
    /// per event, so only the sections that show them ask for them). `observer` sees the selected events in
    /// order, in batches (exports that need the events themselves, and the heap-over-time series).
    public static func run(
        reader: TraceReader, filters: ReportFilters, temporaryThreshold: Int, symbolizer: Symbolizer?,
        countsSizes: Bool = true, countsThreads: Bool = true,
        countedLeakKinds: Set<LeakKind> = LeakKind.countedByDefault, analyzesAllocator: Bool = false,
        progress: ProgressMeter = .silent, observer: ((Span<AllocatorEvent>) -> Void)? = nil
    ) -> TracePass {
        var analyzer = HeapAnalyzer()
        var allocatorView = analyzesAllocator ? AllocatorView(details: reader.allocator) : nil
        var temporary = TemporaryAllocationCounter(threshold: temporaryThreshold)
        var histogram = SizeHistogram()
        var threads = ThreadTotals()
        var filter = EventFilter()
        if let from = filters.from ?? filters.to.map({ _ in 0 }) {
            let lower = ReportFilters.nanoseconds(from)
            let upper = filters.to.map(ReportFilters.nanoseconds) ?? UInt64.max
            filter.timeRange = lower...max(lower, upper)
        }
        if !filters.threads.isEmpty { filter.threads = Set(filters.threads) }
        filter.fromMark = filters.fromMark.map(EventFilter.MarkBound.mark)
        filter.toMark =
            filters.snapshot.map(EventFilter.MarkBound.snapshot) ?? filters.toMark.map(EventFilter.MarkBound.mark)
        let matcher =
            filters.include.isEmpty && filters.exclude.isEmpty
            ? nil : StackMatcher(include: filters.include, exclude: filters.exclude, symbolizer: symbolizer)
        if let matcher { filter.acceptsStack = { matcher.accepts($0) } }
        let filtering = !filter.isEmpty
        let lastSequence = reader.end?.lastSequence
        var count: UInt64 = 0
        progress.update("reading", done: 0, total: lastSequence, unit: "events")
        if let matcher {
            // A thread may use a stack id before the chunk that defines it is read (another thread captured
            // it first), so every stack is decided in a first pass, before any event is filtered.
            progress.update("reading stacks", done: 0, total: nil, unit: "events")
            reader.forEachEventBatch(onStack: { matcher.define($0, frames: $1, modules: $2, generation: $3) }) { _ in }
        }
        // The selected events of a batch, in order; reused from batch to batch.
        var accepted: [AllocatorEvent] = []
        reader.forEachEventBatch { (batch: Span<AllocatorEvent>) in
            count &+= UInt64(batch.count)
            if count & 0xFFFF < UInt64(batch.count), let last = batch.indices.last {
                progress.update("reading", done: batch[last].sequence, total: lastSequence, unit: "events")
            }
            // Every accumulator takes a whole batch at once (their fast paths): unfiltered the reader's, else
            // the selected events of it, which is the same as taking them one by one.
            func consume(_ events: Span<AllocatorEvent>) {
                analyzer.consume(events)
                temporary.consume(events)
                if countsSizes { histogram.consume(events) }
                if countsThreads { threads.consume(events) }
                allocatorView?.consume(events)
                observer?(events)
            }
            if !filtering {
                consume(batch)
                return
            }
            accepted.removeAll(keepingCapacity: true)
            for index in batch.indices where filter.accept(batch[index]) { accepted.append(batch[index]) }
            if !accepted.isEmpty { consume(accepted.span) }
        }
        allocatorView?.finish()
        var analysis = analyzer.result()
        var sites: [UInt32: SiteFigures] = [:]
        sites.reserveCapacity(analysis.sites.count)
        for site in analysis.sites { sites[site.stackID] = SiteFigures(site) }
        var leakKinds = LeakBreakdown()
        if let scan = reader.leakScan {
            let breakdown = analyzer.leakBreakdown(by: scan)
            leakKinds = breakdown.total
            for (stackID, kinds) in breakdown.byStack {
                let leaked = kinds.leaked(counting: countedLeakKinds)
                sites[stackID, default: SiteFigures()].leakKinds = kinds
                sites[stackID]?.leakedBytes = leaked.bytes
                sites[stackID]?.leakedBlocks = leaked.blocks
            }
            let leaked = leakKinds.leaked(counting: countedLeakKinds)
            analysis.summary.leakedBytes = leaked.bytes
            analysis.summary.leakedBlocks = leaked.blocks
        } else {
            leakKinds.unclassified = LeakAmount(
                bytes: analysis.summary.leakedBytes, blocks: analysis.summary.leakedBlocks)
        }
        for (stack, counts) in temporary.byStack {
            sites[stack, default: SiteFigures()].temporaryAllocations = counts.count
            sites[stack, default: SiteFigures()].temporaryBytes = counts.bytes
        }
        var missingMark: EventFilter.MarkBound?
        if let bound = filter.fromMark, !filter.metFromMark {
            missingMark = bound
        } else if let bound = filter.toMark, !filter.metToMark {
            missingMark = bound
        }
        return TracePass(
            reader: reader, summary: analysis.summary, sites: sites, temporaryAllocations: temporary.total,
            temporaryBytes: temporary.totalBytes, histogram: histogram, threads: threads, leakKinds: leakKinds,
            countedLeakKinds: countedLeakKinds, allocatorView: allocatorView, missingMark: missingMark)
    }

    /// Fails when a mark or snapshot that bounds the pass was not found, naming those the trace has (a bound
    /// that is never met would silently report the whole rest of the trace).
    public func checkMarks() throws(TraceError) {
        guard let missingMark else { return }
        let kind: TraceMark.Kind = missingMark.kind == .snapshot ? .snapshot : .mark
        var known: [String] = []
        for mark in reader.marks where mark.kind == kind && !known.contains(mark.name) { known.append(mark.name) }
        throw .unknownMark(path: reader.path, kind: kind.rawValue, name: missingMark.name, known: known)
    }
}

extension TracePass {
    /// Opens the trace at `tracePath` and runs one pass with `options`' filters, temporary threshold and
    /// counted leak kinds: what every command that reads a trace does first. The symbolizer (stack patterns
    /// resolve names while reading) comes back with the pass, for the frames the command then prints.
    public static func run(
        tracePath: String, options: ReportOptions, countsSizes: Bool, countsThreads: Bool,
        progress: ProgressMeter = .silent, observer: ((Span<AllocatorEvent>) -> Void)? = nil
    ) throws(TraceError) -> (pass: TracePass, symbolizer: Symbolizer) {
        try run(
            reader: TraceReader(path: tracePath), options: options, countsSizes: countsSizes,
            countsThreads: countsThreads, progress: progress, observer: observer)
    }

    /// The same on a trace already open.
    public static func run(
        reader: TraceReader, options: ReportOptions, countsSizes: Bool, countsThreads: Bool,
        progress: ProgressMeter = .silent, observer: ((Span<AllocatorEvent>) -> Void)? = nil
    ) throws(TraceError) -> (pass: TracePass, symbolizer: Symbolizer) {
        let symbolizer = Symbolizer(backend: options.symbolizer)
        symbolizer.traceStart = reader.process?.startRealtime
        let pass = run(
            reader: reader, filters: options.filters, temporaryThreshold: options.temporaryThreshold,
            symbolizer: symbolizer, countsSizes: countsSizes, countsThreads: countsThreads,
            countedLeakKinds: options.leakKinds, analyzesAllocator: options.showsAllocator, progress: progress,
            observer: observer)
        try pass.checkMarks()
        return (pass, symbolizer)
    }
}

/// Decides `--include` / `--exclude` for each stack as the reader defines it: a stack is kept when some
/// frame matches an include pattern (or there are none) and no frame matches an exclude pattern. Frames
/// are matched with inlined calls expanded and nothing folded; symbols are resolved only for stacks the
/// module paths alone do not decide.
final class StackMatcher {
    private let include: [StackPattern]
    private let exclude: [StackPattern]
    private let symbolizer: Symbolizer?
    private var answers: [UInt32: Bool] = [:]
    private var resolver: FrameResolver?
    private var resolverGeneration = -1

    init(include: [StackPattern], exclude: [StackPattern], symbolizer: Symbolizer?) {
        self.include = include
        self.exclude = exclude
        self.symbolizer = symbolizer
    }

    /// `modules` as known at the definition, `generation` the definition's module generation: the stack
    /// is matched against the modules loaded then (a library unloaded before, at the same address, is not).
    func define(_ id: UInt32, frames addresses: [UInt64], modules: [Module], generation: Int) {
        if generation != resolverGeneration {
            resolver = FrameResolver(modules: modules, symbolizer: symbolizer)
            resolverGeneration = generation
        }
        answers[id] = decide(addresses, at: generation)
    }

    func accepts(_ id: UInt32) -> Bool {
        answers[id] ?? decide([], at: .max)
    }

    private func decide(_ addresses: [UInt64], at generation: Int) -> Bool {
        guard let resolver else { return include.isEmpty }
        // Module paths first: they need no symbols.
        let bare = addresses.map { address -> ReportFrame in
            let module = resolver.module(containing: address, at: generation)
            return ReportFrame(address: address, module: module?.path, offset: module.map { address &- $0.loadBias })
        }
        func matchesAny(_ patterns: [StackPattern], _ frames: [ReportFrame]) -> Bool {
            patterns.contains { pattern in frames.contains { pattern.matches($0) } }
        }
        if matchesAny(exclude, bare) { return false }
        var included = include.isEmpty || matchesAny(include, bare)
        if included && exclude.isEmpty { return true }
        resolver.prepare(addresses, at: generation)
        let frames = resolver.frames(forStack: addresses, at: generation)
        if matchesAny(exclude, frames) { return false }
        if !included { included = matchesAny(include, frames) }
        return included
    }
}
