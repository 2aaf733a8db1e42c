public import MallocTraceAnalysis
public import MallocTraceFormat

/// Everything a report shows that comes from reading the events, before any frame is resolved: what a
/// full pass computes for one ``ReportOptions``, and what a trace's stored analysis (``StoredAnalysis``)
/// keeps so that a later report needs no pass. The file's own records (process, end, leak scan, process
/// memory, diagnostics of the record scan) are not part of it: a report reads them from the trace.
public struct ReportDigest: Sendable, Equatable {
    /// One ranked entry of a site section, without its frames.
    public struct Entry: Sendable, Equatable {
        public var bytes: UInt64
        public var blocks: UInt64
        public var figures: SiteFigures
        public var group: String
        public var stackID: UInt32
        public var stackCount: Int
    }

    public var summary: HeapSummary
    public var temporaryAllocations: UInt64
    public var temporaryBytes: UInt64
    public var histogram: [SizeHistogram.Bucket]
    /// Already sorted and cut to the report's limit.
    public var threads: [ThreadTotals.Totals]
    public var leakKinds: LeakBreakdown
    public var groupCount: Int
    public var leakSiteCount: Int
    /// One list per ranked section (and only those), in ranking order.
    public var sites: [ReportSection: [Entry]]
    /// The return addresses and module generations of the stacks the lists print (no other stack).
    public var stacks: [UInt32: [UInt64]]
    public var generations: [UInt32: Int]
    public var modules: [Module]
    public var sampling: SampleEstimator?
    /// The resident set over time, downsampled, without the state at the end (the report adds it).
    public var residentSamples: [ResidentSample]
    /// Per pool name (malloctrace.h pools), and the marks, snapshots, pauses and resumes, as the pass found them.
    public var pools: [PoolUsage]
    public var marks: [TraceMark]

    /// The printed stacks' frames as resolved when the analysis was stored, and what they were resolved
    /// with; nil from a pass (frames are then resolved by the report).
    public var frames: StoredFrames?

    /// The stack ids the lists print.
    public var printedStacks: Set<UInt32> { Set(sites.values.flatMap { $0.map(\.stackID) }) }

    /// Groups and ranks the sites of a finished pass; `presenter` resolves first frames when grouping by
    /// function or file (and is then reused for the printed frames).
    public init(pass: TracePass, options: ReportOptions, presenter: StackPresenter, progress: ProgressMeter = .silent) {
        let reader = pass.reader
        sampling = reader.sampling
        summary = pass.summary
        leakKinds = pass.leakKinds
        pools = PoolUsage.make(sites: pass.sites, reader: reader)
        marks = reader.marks
        residentSamples = ResidentSample.downsampled(
            reader.residentSamples, to: Report.residentSampleLimit - (reader.processMemory == nil ? 0 : 1))
        temporaryAllocations = reader.sampling == nil ? pass.temporaryAllocations : 0
        temporaryBytes = reader.sampling == nil ? pass.temporaryBytes : 0
        // The sizes of a sampled trace's events are estimates: no histogram of them.
        histogram = options.sections.contains(.histogram) && reader.sampling == nil ? pass.histogram.buckets : []
        threads =
            options.sections.contains(.threads)
            ? Array(
                pass.threads.threads.sorted { ($0.allocationCalls, $1.threadID) > ($1.allocationCalls, $0.threadID) }
                    .prefix(max(0, options.limit(for: .threads)))) : []
        // A sampled trace cannot say what was temporary: most allocations between two samples are missing.
        let measurable = { (section: ReportSection) in reader.sampling == nil || section != .temporary }
        let listed = ReportSection.allCases.filter {
            $0.listsSites && options.sections.contains($0) && measurable($0)
        }
        // Grouping by function or file needs every stack's first shown frame; by stack, nothing is resolved
        // before the top entries are known.
        let groups =
            listed.isEmpty && options.grouping != .stack
            ? []
            : SiteGroup.make(sites: pass.sites, grouping: options.grouping, presenter: presenter, progress: progress)
        groupCount = options.grouping == .stack ? pass.sites.count : groups.count
        leakSiteCount =
            options.grouping == .stack
            ? pass.sites.values.count { $0.leakedBlocks > 0 } : groups.count { $0.figures.leakedBlocks > 0 }
        var sites: [ReportSection: [Entry]] = [:]
        for section in listed {
            guard let ranking = SiteRanking(section) else { continue }
            sites[section] = SiteGroup.ranked(groups, by: ranking, limit: options.limit(for: section)).map {
                Entry(
                    bytes: $0.bytes, blocks: $0.blocks, figures: $0.group.figures, group: $0.group.label,
                    stackID: $0.representative, stackCount: $0.group.members.count)
            }
        }
        self.sites = sites
        var stacks: [UInt32: [UInt64]] = [:]
        var generations: [UInt32: Int] = [:]
        for id in Set(sites.values.flatMap { $0.map(\.stackID) }) {
            stacks[id] = reader.stacks[id]
            generations[id] = reader.stackGenerations[id]
        }
        self.stacks = stacks
        self.generations = generations
        modules = reader.modules
    }

    init(
        summary: HeapSummary, temporaryAllocations: UInt64, temporaryBytes: UInt64,
        histogram: [SizeHistogram.Bucket], threads: [ThreadTotals.Totals], leakKinds: LeakBreakdown,
        groupCount: Int, leakSiteCount: Int, sites: [ReportSection: [Entry]], stacks: [UInt32: [UInt64]],
        generations: [UInt32: Int], modules: [Module], sampling: SampleEstimator?, residentSamples: [ResidentSample],
        pools: [PoolUsage], marks: [TraceMark], frames: StoredFrames?
    ) {
        self.summary = summary
        self.temporaryAllocations = temporaryAllocations
        self.temporaryBytes = temporaryBytes
        self.histogram = histogram
        self.threads = threads
        self.leakKinds = leakKinds
        self.groupCount = groupCount
        self.leakSiteCount = leakSiteCount
        self.sites = sites
        self.stacks = stacks
        self.generations = generations
        self.modules = modules
        self.sampling = sampling
        self.residentSamples = residentSamples
        self.pools = pools
        self.marks = marks
        self.frames = frames
    }
}

/// The frames a stored analysis prints, resolved when it was stored. `heaptrack_print` reads frames its
/// recorder resolved while the program ran; these are reused only when nothing that decides them has
/// changed since (``MallocTraceSymbolication/Symbolizer/inputsFingerprint(modules:)``: the same symbolizer,
/// module files and debug files), so that a report from them is the report a new symbolization would give.
public struct StoredFrames: Sendable, Equatable {
    public var fingerprint: String
    /// The shown frames (inlined calls expanded, allocator frames folded as the stored options say), by stack.
    public var byStack: [UInt32: [ReportFrame]]

    /// The modules (path and build-id) these frames come from: what the fingerprint covers.
    static func modules(of byStack: [UInt32: [ReportFrame]], in modules: [Module]) -> [(
        path: String, buildID: [UInt8]
    )] {
        let paths = Set(byStack.values.flatMap { $0.compactMap(\.module) })
        return modules.filter { paths.contains($0.path) }.map { ($0.path, $0.buildID) }
    }
}
