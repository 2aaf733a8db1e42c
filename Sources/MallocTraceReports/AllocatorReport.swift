public import MallocTraceAnalysis
public import MallocTraceFormat

/// What `report --allocator` shows: the heap from below. Requested against usable bytes (by size class, site and
/// thread), blocks served by the heap against mmap, glibc's mmap threshold over time, the program's own mappings,
/// and the resident set beside the live heap with the gap between them split into named causes.
public struct AllocatorReport {
    public struct Site {
        public var stackID: UInt32
        public var sources: ChunkSources
        public var stack: [ReportFrame]
    }

    public struct Candidate {
        public var stackID: UInt32
        public var candidate: BoundaryCandidate
        public var stack: [ReportFrame]
    }

    public struct MappingSite {
        public var site: MappingSummary.Site
        public var stack: [ReportFrame]
    }

    /// The program's own mappings of one cause: what their stacks say they are (CPython's pymalloc arenas), or
    /// where they were made.
    public struct MappingCauseGroup {
        public var cause: String
        public var mmapCalls: UInt64 = 0
        public var bytesMapped: UInt64 = 0
        public var liveBytes: UInt64 = 0
        /// At the moment the program's mapped bytes peaked.
        public var peakBytes: UInt64 = 0
        /// The largest sites, with their stacks.
        public var sites: [MappingSite] = []
    }

    /// One moment of the resident set beside the live heap.
    public struct Point: Equatable {
        public var time: UInt64
        public var residentBytes: UInt64?
        public var breakBytes: UInt64?
        public var liveRequestedBytes: UInt64
        public var liveChunkBytes: UInt64
        public var mmappedChunkBytes: UInt64
        public var mappedBytes: UInt64?
    }

    public var details: AllocatorDetails?
    /// Every recorded allocation by where it was served from.
    public var sources: ChunkSources
    public var unknownCalls: UInt64
    public var sizeClasses: [AllocatorView.SizeClass]
    /// Sites with the most usable bytes not asked for.
    public var wasteSites: [Site]
    /// Sites whose requests sit just above a boundary, by bytes a smaller request would save.
    public var candidates: [Candidate]
    public var threads: [(threadID: UInt32, sources: ChunkSources)]
    public var threshold: ThresholdTimeline?
    /// The live chunks when live requested bytes peaked.
    public var atPeak: LiveChunks
    public var liveAtEnd: LiveChunks
    public var mappings: MappingSummary?
    /// By live bytes at the end, then bytes mapped.
    public var mappingCauses: [MappingCauseGroup]
    /// The gap at the end and at the largest resident sample.
    public var gaps: [MemoryGap]
    /// Resident set and heap over time (at most ``pointLimit``).
    public var timeline: [Point]
    public static let pointLimit = 500
    /// Mapping sites whose stacks are resolved to name their cause; the rest count as "other direct mappings".
    static let namedMappingSites = 200
    static let stacksPerCause = 3

    /// True when the trace recorded usable sizes (traces made before this view, or with MALLOCTRACE_USABLE=0, did
    /// not).
    public var hasUsableSizes: Bool { sources.total.calls > 0 }

    init(pass: TracePass, view: AllocatorView, presenter: StackPresenter, top: Int) {
        let reader = pass.reader
        details = reader.allocator
        sources = view.sources
        unknownCalls = view.unknownCalls
        sizeClasses = view.sizeClasses
        atPeak = view.atPeak
        liveAtEnd = view.live
        let limit = max(0, top)
        let wasteful = view.sites.filter { $0.value.sources.total.wastedBytes > 0 }.sorted {
            ($0.value.sources.total.wastedBytes, $1.key) > ($1.value.sources.total.wastedBytes, $0.key)
        }.prefix(limit)
        let nearBoundary = view.candidates.map { ($0.key.stackID, $0.value) }.sorted {
            ($0.1.savableBytes, $1.0, $1.1.requested) > ($1.1.savableBytes, $0.0, $0.1.requested)
        }.prefix(limit)
        threads = view.threads.map { ($0.key, $0.value) }.sorted {
            ($0.sources.total.calls, $1.threadID) > ($1.sources.total.calls, $0.threadID)
        }
        threshold = reader.allocator.flatMap { details in
            details.isGlibc
                ? ThresholdTimeline.replay(
                    details: details, mallopt: reader.malloptCalls, releases: view.mappedReleases)
                : nil
        }
        let recordsMappings = reader.allocator?.recordsMappings ?? false
        let mappingSummary = recordsMappings ? MappingSummary.replay(reader.mappings) : nil
        mappings = mappingSummary
        // Causes come from stacks: the sites that mapped the most are named, the rest grouped.
        let named = Array(
            (mappingSummary?.sites ?? []).sorted { ($0.bytesMapped, $1.stackID) > ($1.bytesMapped, $0.stackID) }
                .prefix(Self.namedMappingSites))

        presenter.prepareFrames(wasteful.map(\.key) + nearBoundary.map(\.0) + named.map(\.stackID))
        wasteSites = wasteful.map { Site(stackID: $0.key, sources: $0.value.sources, stack: presenter.frames($0.key)) }
        candidates = nearBoundary.map { Candidate(stackID: $0.0, candidate: $0.1, stack: presenter.frames($0.0)) }
        var causeOf: [UInt32: String] = [:]
        for site in named { causeOf[site.stackID] = MappingCause.name(presenter.allFrames(site.stackID), site: site) }
        let cause = { (stackID: UInt32) in causeOf[stackID] ?? "other direct mappings" }
        var groups: [String: MappingCauseGroup] = [:]
        for site in mappingSummary?.sites ?? [] {
            var group = groups[cause(site.stackID)] ?? MappingCauseGroup(cause: cause(site.stackID))
            group.mmapCalls &+= site.mmapCalls
            group.bytesMapped &+= site.bytesMapped
            group.liveBytes &+= site.liveBytes
            group.peakBytes &+= site.peakBytes
            if group.sites.count < Self.stacksPerCause && causeOf[site.stackID] != nil {
                group.sites.append(MappingSite(site: site, stack: presenter.frames(site.stackID)))
            }
            groups[group.cause] = group
        }
        mappingCauses = Array(
            groups.values.sorted { ($0.liveBytes, $0.peakBytes, $1.cause) > ($1.liveBytes, $1.peakBytes, $0.cause) }
                .prefix(limit))
        func causes(at time: UInt64) -> [(cause: String, bytes: UInt64)] {
            var bytes: [String: UInt64] = [:]
            for (stackID, live) in mappingSummary?.liveBytesBySite(at: time) ?? [:] {
                bytes[cause(stackID), default: 0] &+= live
            }
            return bytes.map { ($0.key, $0.value) }.sorted { ($0.1, $1.0) > ($1.1, $0.0) }
        }

        var moments: [MemoryGap] = []
        let mappedAt = { (time: UInt64) in mappingSummary?.liveBytes(at: time) }
        if let memory = reader.processMemory {
            moments.append(
                MemoryGap.split(
                    moment: "end", time: memory.time, resident: memory.residentBytes, breakBytes: memory.breakBytes,
                    live: view.live.sources, mapped: mappedAt(memory.time)))
        }
        // The largest sample, unless the end itself was larger (then the end is the moment to look at).
        if let largest = reader.residentSamples.max(by: { $0.residentBytes < $1.residentBytes }),
            largest.residentBytes > reader.processMemory?.residentBytes ?? 0
        {
            moments.append(
                MemoryGap.split(
                    moment: "rss peak", time: largest.time, resident: largest.residentBytes,
                    breakBytes: largest.breakBytes, live: view.live(at: largest.time).sources,
                    mapped: mappedAt(largest.time)))
        }
        if mappingSummary != nil {
            for index in moments.indices { moments[index].mappingCauses = causes(at: moments[index].time) }
        }
        gaps = moments

        var points: [Point] = []
        var samples = ResidentSample.downsampled(reader.residentSamples, to: Self.pointLimit - 1)
        if let memory = reader.processMemory {
            samples.append(
                ResidentSample(time: memory.time, residentBytes: memory.residentBytes, breakBytes: memory.breakBytes))
        }
        if samples.isEmpty {
            let step = max(1, view.timeline.count / Self.pointLimit)
            for index in stride(from: 0, to: view.timeline.count, by: step) {
                let live = view.timeline[index]
                points.append(Self.point(live, time: live.time, resident: nil, mapped: mappedAt(live.time)))
            }
        } else {
            for sample in samples {
                points.append(
                    Self.point(
                        view.live(at: sample.time), time: sample.time, resident: sample, mapped: mappedAt(sample.time)))
            }
        }
        timeline = points
    }

    private static func point(_ live: LiveChunks, time: UInt64, resident: ResidentSample?, mapped: UInt64?) -> Point {
        let total = live.sources.total
        return Point(
            time: time, residentBytes: resident?.residentBytes, breakBytes: resident?.breakBytes,
            liveRequestedBytes: total.requestedBytes, liveChunkBytes: total.chunkBytes,
            mmappedChunkBytes: live.sources.mmapped.chunkBytes, mappedBytes: mapped)
    }
}

/// Names what a program's own mappings are from their call stack.
enum MappingCause {
    /// Functions that identify a known allocator of its own, with what to call its mappings.
    static let known: [(function: String, name: String)] = [
        ("_PyObject_ArenaMmap", "CPython pymalloc arenas"),
        ("new_arena", "CPython pymalloc arenas"),
        ("_PyObject_VirtualAlloc", "CPython pymalloc arenas"),
        ("mi_os_mem_alloc", "mimalloc segments"),
        ("je_pages_map", "jemalloc extents"),
        ("pages_map", "jemalloc extents"),
        ("TCMalloc_SystemAlloc", "tcmalloc spans"),
    ]

    /// CPython's arenas: 256 KiB before 3.10, 1 MiB since (ARENA_SIZE, on 64-bit with the radix tree).
    static let pythonArenaSizes: Set<UInt64> = [256 << 10, 1 << 20]

    static func name(_ frames: [ReportFrame], site: MappingSummary.Site) -> String {
        for frame in frames {
            guard let function = frame.function else { continue }
            if let match = known.first(where: { function.hasPrefix($0.function) }) { return match.name }
        }
        // A stripped interpreter (Debian's python3) names no static function: an arena-sized mapping made by the
        // interpreter's own code, under its object allocator, is still pymalloc's.
        let module = frames.first?.moduleName ?? ""
        if (module.hasPrefix("python3") || module.hasPrefix("libpython3"))
            && pythonArenaSizes.contains(site.typicalLength)
        {
            return "CPython pymalloc arenas"
        }
        let caller = frames.first { $0.function.map { !$0.hasPrefix("mmap") && !$0.hasPrefix("__mmap") } ?? false }
        return "direct mmap from " + (caller?.function ?? caller?.location ?? "an unknown caller")
    }
}
