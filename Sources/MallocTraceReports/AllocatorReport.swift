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
        /// What the mappings are, when their stack says (CPython's pymalloc arenas), else where they were made.
        public var cause: String
        public var stack: [ReportFrame]
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
    public var mappingSites: [MappingSite]
    /// The gap at the end and at the largest resident sample.
    public var gaps: [MemoryGap]
    /// Resident set and heap over time (at most ``pointLimit``).
    public var timeline: [Point]
    public static let pointLimit = 500

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
                ? ThresholdTimeline.replay(details: details, mallopt: reader.malloptCalls, releases: view.mappedReleases)
                : nil
        }
        let recordsMappings = reader.allocator?.recordsMappings ?? false
        let mappingSummary = recordsMappings ? MappingSummary.replay(reader.mappings) : nil
        mappings = mappingSummary
        let shownMappings = Array((mappingSummary?.sites ?? []).prefix(limit))

        presenter.prepareFrames(
            wasteful.map(\.key) + nearBoundary.map(\.0) + shownMappings.map(\.stackID))
        wasteSites = wasteful.map { Site(stackID: $0.key, sources: $0.value.sources, stack: presenter.frames($0.key)) }
        candidates = nearBoundary.map { Candidate(stackID: $0.0, candidate: $0.1, stack: presenter.frames($0.0)) }
        mappingSites = shownMappings.map { site in
            MappingSite(
                site: site, cause: MappingCause.name(presenter.allFrames(site.stackID)),
                stack: presenter.frames(site.stackID))
        }

        var moments: [MemoryGap] = []
        let mappedAt = { (time: UInt64) in mappingSummary?.liveBytes(at: time) }
        if let memory = reader.processMemory {
            moments.append(
                MemoryGap.split(
                    moment: "end", time: memory.time, resident: memory.residentBytes, breakBytes: memory.breakBytes,
                    live: view.live.sources, mapped: mappedAt(memory.time)))
        }
        if let largest = reader.residentSamples.max(by: { $0.residentBytes < $1.residentBytes }) {
            moments.append(
                MemoryGap.split(
                    moment: "rss peak", time: largest.time, resident: largest.residentBytes,
                    breakBytes: largest.breakBytes, live: view.live(at: largest.time).sources,
                    mapped: mappedAt(largest.time)))
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
                    Self.point(view.live(at: sample.time), time: sample.time, resident: sample, mapped: mappedAt(sample.time)))
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

    static func name(_ frames: [ReportFrame]) -> String {
        for frame in frames {
            guard let function = frame.function else { continue }
            if let match = known.first(where: { function.hasPrefix($0.function) }) { return match.name }
        }
        let caller = frames.first { $0.function.map { !$0.hasPrefix("mmap") && !$0.hasPrefix("__mmap") } ?? false }
        return "direct mmap from " + (caller?.function ?? caller?.location ?? "an unknown caller")
    }
}
