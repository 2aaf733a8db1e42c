public import MallocTraceAnalysis
public import MallocTraceFormat
public import MallocTraceSymbolication

/// A group of allocations (one call stack, or all stacks of one function or file) with the figure the
/// section ranks by.
public struct ReportSite: Sendable, Equatable {
    /// The section's byte figure: live at the peak, leaked, allocated, or temporarily allocated.
    public var bytes: UInt64
    /// The count behind ``bytes``: blocks, allocation calls or temporary allocations.
    public var blocks: UInt64
    /// All figures of the group, whatever the section.
    public var figures: SiteFigures
    /// What the group is: `stack N`, a function, or a file.
    public var group: String
    /// The group's largest stack by the section's figure (the stack itself when grouping by stack).
    public var stackID: UInt32
    /// Number of distinct call stacks in the group.
    public var stackCount: Int
    /// The frames of ``stackID`` as shown: inlined calls expanded, allocator frames folded unless kept.
    public var stack: [ReportFrame]

    public var allocationCalls: UInt64 { figures.allocationCalls }
}

/// How frames were resolved, and which printed frames could not be.
public struct SymbolizationNotes: Sendable, Equatable {
    public struct Problem: Sendable, Equatable {
        public var module: String
        public var reason: String
        /// Printed return addresses in that module with that problem.
        public var frames: Int
    }

    /// `llvm-symbolizer (PATH)` or `symbol tables only, …`.
    public var backend: String
    public var symbolizerPath: String?
    /// Distinct return addresses among the printed frames.
    public var printedAddresses = 0
    /// Printed addresses without a function name.
    public var unresolved = 0
    /// Printed addresses with a function name but without file and line.
    public var withoutSourceLocation = 0
    /// Why addresses went unresolved or lack file and line, by module.
    public var problems: [Problem] = []
}

/// A section's ranking rule.
enum SiteRanking {
    case peak, leaks, allocations, bytes, temporary

    init?(_ section: ReportSection) {
        switch section {
        case .peak: self = .peak
        case .leaks: self = .leaks
        case .allocations: self = .allocations
        case .bytes: self = .bytes
        case .temporary: self = .temporary
        case .summary, .histogram, .threads: return nil
        }
    }

    /// (ranked by, bytes, blocks) of a group; nil when the group has nothing for this section.
    func figure(_ figures: SiteFigures) -> (rank: UInt64, bytes: UInt64, blocks: UInt64)? {
        switch self {
        case .peak:
            figures.peakBlocks > 0 ? (figures.peakBytes, figures.peakBytes, figures.peakBlocks) : nil
        case .leaks:
            figures.leakedBlocks > 0 ? (figures.leakedBytes, figures.leakedBytes, figures.leakedBlocks) : nil
        case .allocations:
            figures.allocationCalls > 0
                ? (figures.allocationCalls, figures.bytesAllocated, figures.allocationCalls) : nil
        case .bytes:
            figures.allocationCalls > 0
                ? (figures.bytesAllocated, figures.bytesAllocated, figures.allocationCalls) : nil
        case .temporary:
            figures.temporaryAllocations > 0
                ? (figures.temporaryAllocations, figures.temporaryBytes, figures.temporaryAllocations) : nil
        }
    }
}

/// Allocation sites merged by a ``StackGrouping``. Sums of per-stack figures are exact for every grouping:
/// each stack's peak figure is its live bytes at the one global peak, so a group's is too.
public struct SiteGroup: Sendable {
    /// Identity of the group (stack id, function with module, or file).
    public var key: String
    /// How the group is named in reports.
    public var label: String
    public var members: [(stackID: UInt32, figures: SiteFigures)]
    public var figures: SiteFigures

    /// Groups `sites` by `grouping`. With `matchingFrames`, stacks are identified by their shown frames
    /// (functions and modules, not addresses) rather than by id, so that groups of two traces can be
    /// matched; that resolves every frame of every stack.
    public static func make(
        sites: [UInt32: SiteFigures], grouping: StackGrouping, presenter: StackPresenter,
        matchingFrames: Bool = false, progress: ProgressMeter = .silent
    ) -> [SiteGroup] {
        if grouping == .stack && !matchingFrames {
            return sites.map { id, figures in
                SiteGroup(key: "stack \(id)", label: "stack \(id)", members: [(id, figures)], figures: figures)
            }
        }
        if grouping == .stack {
            presenter.prepareFrames(sites.keys, progress: progress)
        } else {
            presenter.prepareFirstFrames(sites.keys, progress: progress)
        }
        var groups: [String: SiteGroup] = [:]
        for (id, figures) in sites {
            let (key, label) =
                grouping == .stack
                ? Self.stackKey(presenter.frames(id)) : Self.key(presenter.firstFrame(id), grouping: grouping)
            groups[key, default: SiteGroup(key: key, label: label, members: [], figures: SiteFigures())].members.append(
                (id, figures))
            groups[key]?.figures += figures
        }
        return Array(groups.values)
    }

    /// A stack by its frames' functions and modules: the same in two traces of one program.
    static func stackKey(_ frames: [ReportFrame]) -> (key: String, label: String) {
        guard let first = frames.first else { return ("(no stack)", "(no stack recorded)") }
        return (frames.map(\.matchKey).joined(separator: "\n"), first.function ?? first.location)
    }

    static func key(_ frame: ReportFrame?, grouping: StackGrouping) -> (key: String, label: String) {
        guard let frame else { return ("(no stack)", "(no stack recorded)") }
        switch grouping {
        case .stack, .function:
            guard let function = frame.function else { return (frame.location, frame.location) }
            let module = frame.moduleName ?? "?"
            return (frame.matchKey, "\(function) (\(module))")
        case .file:
            if let file = frame.file { return (file, file) }
            let module = frame.moduleName ?? "unknown module"
            return ("(module) " + module, "\(module) (no file information)")
        }
    }

    /// The top `limit` groups by `ranking`, as report entries, largest first (ties: smallest stack id).
    static func ranked(
        _ groups: [SiteGroup], by ranking: SiteRanking, limit: Int
    ) -> [(group: SiteGroup, representative: UInt32, bytes: UInt64, blocks: UInt64)] {
        var entries: [(group: SiteGroup, representative: UInt32, rank: UInt64, bytes: UInt64, blocks: UInt64)] = []
        for group in groups {
            guard let figure = ranking.figure(group.figures) else { continue }
            var best: (rank: UInt64, id: UInt32)?
            for member in group.members {
                let rank = ranking.figure(member.figures)?.rank ?? 0
                if best == nil || rank > best?.rank ?? 0 || (rank == best?.rank && member.stackID < best?.id ?? 0) {
                    best = (rank, member.stackID)
                }
            }
            entries.append((group, best?.id ?? 0, figure.rank, figure.bytes, figure.blocks))
        }
        entries.sort {
            ($0.rank, $1.representative, $1.group.key) > ($1.rank, $0.representative, $0.group.key)
        }
        return entries.prefix(max(0, limit)).map { ($0.group, $0.representative, $0.bytes, $0.blocks) }
    }
}

/// Everything a report prints, independent of the output format.
public struct Report {
    public var tracePath: String
    public var process: ProcessDetails?
    public var end: EndDetails?
    public var isTruncated: Bool
    public var diagnostics: [String]
    public var options: ReportOptions
    /// Figures of the selected allocations (all of them without filters).
    public var summary: HeapSummary
    public var temporaryAllocations: UInt64
    public var temporaryBytes: UInt64
    /// One list per selected site section, in ranking order, each at most its `--top` long.
    public var sites: [ReportSection: [ReportSite]]
    public var histogram: [SizeHistogram.Bucket]
    public var threads: [ThreadTotals.Totals]
    /// Number of groups with leaked blocks (also those beyond `top`).
    public var leakSiteCount: Int
    /// Number of groups in the report's grouping.
    public var groupCount: Int
    public var symbolization: SymbolizationNotes?
    /// Present for a sampled trace: byte figures are estimates, counts are recorded samples.
    public var sampling: SampleEstimator?
    /// The process's leak scan, when the trace has one: then ``leakKinds`` classifies every live block.
    public var leakScan: LeakScan?
    /// Blocks live at the end by kind; ``HeapSummary/leakedBytes`` counts ``ReportOptions/leakKinds`` only.
    public var leakKinds: LeakBreakdown
    /// The process's memory when the trace ended (resident set, its peak, program break), when recorded.
    public var processMemory: ProcessMemory?
    /// The resident set and program break over time, at most ``residentSampleLimit`` points, the state at the
    /// end (``processMemory``) last. Not affected by filters: it describes the process.
    public var residentSamples: [ResidentSample]
    /// Points ``residentSamples`` keeps at most.
    public static let residentSampleLimit = 500
    /// The allocator's view (`report --allocator`), when asked for.
    public var allocator: AllocatorReport?
    /// Pools of the control API (malloctrace.h), with their selected blocks' figures, by name.
    public var pools: [PoolUsage]
    /// Marks, snapshots, pauses and resumes, in sequence order (not affected by filters).
    public var marks: [TraceMark]

    public var leaks: [ReportSite] { sites[.leaks] ?? [] }
    public var peakContributors: [ReportSite] { sites[.peak] ?? [] }

    /// Where a report's figures came from.
    public enum Origin: Sendable, Equatable {
        /// A pass over every event.
        case events
        /// The trace's stored analysis (``StoredAnalysis``): no event was read.
        case storedAnalysis
    }

    /// Where this report's figures came from (not printed: both give the same report).
    public var origin = Origin.events

    /// Runs the whole pipeline for one trace file: read and analyze in one pass, group, rank, and resolve
    /// the frames that will be printed. With `storedAnalysisWriter` (the version of malloctrace that may
    /// have written the trace's stored analysis), a stored analysis for exactly `options` is used instead of
    /// the pass when it still covers the events; anything else makes the pass.
    public static func make(
        tracePath: String, options: ReportOptions = ReportOptions(), progress: ProgressMeter = .silent,
        storedAnalysisWriter: String? = nil
    ) throws(TraceError) -> Report {
        let reader = try TraceReader(path: tracePath)
        if let writer = storedAnalysisWriter,
            let report = stored(reader: reader, options: options, writer: writer, progress: progress)
        {
            progress.finish()
            return report
        }
        let (pass, symbolizer) = try TracePass.run(
            reader: reader, options: options, countsSizes: options.sections.contains(.histogram),
            countsThreads: options.sections.contains(.threads), progress: progress)
        // The frames `run` resolved for the default report serve any other report of the same trace too.
        let storedFrames = storedAnalysisWriter.flatMap { writer in
            Self.storedFrames(reader: pass.reader, options: options, writer: writer, symbolizer: symbolizer)
        }
        let report = Report(
            pass: pass, options: options, symbolizer: symbolizer, reusing: storedFrames ?? [:], progress: progress)
        progress.finish()
        return report
    }

    /// The frames `reader`'s stored analysis resolved, if `symbolizer` would resolve them the same way now
    /// and `options` fold them the same way. `reader` has been read already: instead of a checksum of the
    /// whole file, each stack's stored addresses and module generation, and the modules, are compared with
    /// what the pass read, and only the stacks that match keep their frames.
    static func storedFrames(
        reader: TraceReader, options: ReportOptions, writer: String, symbolizer: Symbolizer
    ) -> [UInt32: [ReportFrame]]? {
        let defaults = StoredAnalysis.defaultOptions
        guard options.keepsAllocatorFrames == defaults.keepsAllocatorFrames,
            case .success(let payload) = reader.storedAnalysis(checkingEvents: false),
            let digest = StoredAnalysis.decode(payload, options: defaults, writer: writer),
            digest.modules == reader.modules,
            let frames = currentFrames(of: digest, symbolizer: symbolizer)
        else { return nil }
        return frames.filter { id, _ in
            digest.stacks[id] == reader.stacks[id] && digest.generations[id] == reader.stackGenerations[id]
        }
    }

    /// `digest`'s stored frames, if their inputs (symbolizer, module and debug files) are unchanged.
    private static func currentFrames(of digest: ReportDigest, symbolizer: Symbolizer) -> [UInt32: [ReportFrame]]? {
        guard let frames = digest.frames,
            frames.fingerprint
                == symbolizer.inputsFingerprint(modules: StoredFrames.modules(of: frames.byStack, in: digest.modules))
        else { return nil }
        return frames.byStack
    }

    /// The report from `reader`'s stored analysis, if it has a valid one for `options` by `writer`.
    static func stored(reader: TraceReader, options: ReportOptions, writer: String, progress: ProgressMeter) -> Report?
    {
        // Only the default options are ever stored: other options need not read the whole file to learn that.
        guard
            StoredAnalysis.stamp(for: options, writer: writer)
                == StoredAnalysis.stamp(for: StoredAnalysis.defaultOptions, writer: writer),
            case .success(let payload) = reader.storedAnalysis(),
            let digest = StoredAnalysis.decode(payload, options: options, writer: writer)
        else { return nil }
        let symbolizer = Symbolizer(backend: options.symbolizer)
        symbolizer.traceStart = reader.process?.startRealtime
        let presenter = StackPresenter(
            resolver: FrameResolver(modules: digest.modules, symbolizer: symbolizer), stacks: digest.stacks,
            generations: digest.generations, keepsAllocatorFrames: options.keepsAllocatorFrames)
        if let frames = currentFrames(of: digest, symbolizer: symbolizer) { presenter.reuse(frames) }
        var report = Report(
            reader: reader, digest: digest, options: options, presenter: presenter, symbolizer: symbolizer,
            progress: progress)
        report.origin = .storedAnalysis
        return report
    }

    /// The report of a finished pass. Frames are resolved with `symbolizer` only as far as needed; those of
    /// the stacks in `storedFrames` (resolved earlier with the same inputs) are taken as they are.
    public init(
        pass: TracePass, options: ReportOptions, symbolizer: Symbolizer,
        reusing storedFrames: [UInt32: [ReportFrame]] = [:], progress: ProgressMeter = .silent
    ) {
        let presenter = StackPresenter(
            reader: pass.reader, symbolizer: symbolizer, keepsAllocatorFrames: options.keepsAllocatorFrames)
        presenter.reuse(storedFrames)
        let digest = ReportDigest(pass: pass, options: options, presenter: presenter, progress: progress)
        self.init(
            reader: pass.reader, digest: digest, options: options, presenter: presenter, symbolizer: symbolizer,
            progress: progress)
        // Never stored: `--allocator` is not a default option, so its reports always come from a pass.
        allocator = pass.allocatorView.map {
            AllocatorReport(pass: pass, view: $0, presenter: presenter, top: options.top)
        }
    }

    /// The report of `digest` (from a pass over `reader`'s events or from its stored analysis); the trace's
    /// own records come from `reader`. Resolves the printed frames.
    init(
        reader: TraceReader, digest: ReportDigest, options: ReportOptions, presenter: StackPresenter,
        symbolizer: Symbolizer, progress: ProgressMeter
    ) {
        tracePath = reader.path
        process = reader.process
        end = reader.end
        isTruncated = reader.isTruncated
        diagnostics = reader.diagnostics.map(\.description)
        sampling = digest.sampling
        leakScan = reader.leakScan
        leakKinds = digest.leakKinds
        processMemory = reader.processMemory
        var samples = digest.residentSamples
        if let memory = reader.processMemory {
            samples.append(
                ResidentSample(time: memory.time, residentBytes: memory.residentBytes, breakBytes: memory.breakBytes))
        }
        residentSamples = samples
        self.options = options
        pools = digest.pools
        marks = digest.marks
        summary = digest.summary
        temporaryAllocations = digest.temporaryAllocations
        temporaryBytes = digest.temporaryBytes
        histogram = digest.histogram
        threads = digest.threads
        groupCount = digest.groupCount
        leakSiteCount = digest.leakSiteCount
        let printed = digest.printedStacks
        presenter.prepareFrames(printed, progress: progress)
        sites = digest.sites.mapValues { entries in
            entries.map { entry in
                ReportSite(
                    bytes: entry.bytes, blocks: entry.blocks, figures: entry.figures, group: entry.group,
                    stackID: entry.stackID, stackCount: entry.stackCount, stack: presenter.frames(entry.stackID))
            }
        }
        symbolization =
            printed.isEmpty && digest.sites.isEmpty
            ? nil : Self.notes(for: sites.values.flatMap { $0.flatMap(\.stack) }, symbolizer: symbolizer)
    }

    static func notes(for frames: [ReportFrame], symbolizer: Symbolizer) -> SymbolizationNotes {
        var notes = SymbolizationNotes(
            backend: symbolizer.backendDescription,
            symbolizerPath: symbolizer.hasDebugInfoBackend ? symbolizer.symbolizerPath : nil)
        // One entry per return address: its outermost frame (the function that contains the call).
        var byAddress: [UInt64: ReportFrame] = [:]
        for frame in frames where !frame.isInlined && !frame.isPoolFrame { byAddress[frame.address] = frame }
        for frame in frames where byAddress[frame.address] == nil && !frame.isPoolFrame {
            byAddress[frame.address] = frame
        }
        notes.printedAddresses = byAddress.count
        var problems: [String: [String: Int]] = [:]
        for frame in byAddress.values {
            if frame.function == nil {
                notes.unresolved += 1
            } else if frame.file == nil {
                notes.withoutSourceLocation += 1
            } else {
                continue
            }
            problems[frame.module ?? "(no module)", default: [:]][frame.problem ?? "unknown", default: 0] += 1
        }
        notes.problems = problems.flatMap { module, reasons in
            reasons.map { SymbolizationNotes.Problem(module: module, reason: $0.key, frames: $0.value) }
        }
        .sorted { ($0.frames, $1.module, $1.reason) > ($1.frames, $0.module, $0.reason) }
        return notes
    }

    /// How the process ended, in words.
    public var endDescription: String { Self.endDescription(end) }

    /// How a process with this END record (nil: none) ended, in words.
    public static func endDescription(_ end: EndDetails?) -> String {
        if let end {
            switch end.reason {
            case .normalExit: return "exited normally"
            case .underscoreExit(let status): return "called _exit(\(status))"
            case .quickExit(let status): return "called quick_exit(\(status))"
            case .exec: return "exec'd another program"
            case .unknown(let value): return "ended (reason \(value))"
            }
        }
        return "trace is truncated: the process was killed or crashed before it exited"
    }

    /// Nanoseconds the process ran, from the exit record or else the last event seen.
    public var durationNanoseconds: UInt64 { end?.time ?? summary.lastEventTime }

    /// Seconds the process ran, from the exit record or else the last event seen.
    public var duration: Double { Double(durationNanoseconds) / 1e9 }

    /// Heap calls (allocation, failed and free calls) per second of runtime; nil for a zero runtime.
    public var callsPerSecond: Double? {
        guard durationNanoseconds > 0 else { return nil }
        return Double(summary.allocationCalls + summary.failedCalls + summary.freeCalls) / duration
    }
}
