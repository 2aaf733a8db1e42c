public import MallocTraceFormat

/// Blocks and bytes as the allocator sees them: requested against usable bytes, and where the bytes came from.
public struct ChunkTally: Sendable, Equatable {
    public var calls: UInt64 = 0
    public var requestedBytes: UInt64 = 0
    public var usableBytes: UInt64 = 0
    /// Usable bytes plus glibc's chunk header (8 bytes in an arena, 16 for an mmapped chunk): what the block
    /// takes from the heap or its mapping. Equal to ``usableBytes`` for other allocators.
    public var chunkBytes: UInt64 = 0

    public init() {}

    /// Usable bytes the program did not ask for (internal waste).
    public var wastedBytes: UInt64 { usableBytes &- requestedBytes }

    mutating func add(requested: UInt64, usable: UInt64, chunk: UInt64) {
        calls &+= 1
        requestedBytes &+= requested
        usableBytes &+= usable
        chunkBytes &+= chunk
    }

    mutating func remove(requested: UInt64, usable: UInt64, chunk: UInt64) {
        calls &-= 1
        requestedBytes &-= requested
        usableBytes &-= usable
        chunkBytes &-= chunk
    }
}

/// Where the allocator served blocks from: glibc's main (brk) arena, a thread arena, or a mapping of their own.
public struct ChunkSources: Sendable, Equatable {
    public var mainArena = ChunkTally()
    public var threadArenas = ChunkTally()
    public var mmapped = ChunkTally()

    public init() {}

    public var total: ChunkTally {
        var sum = mainArena
        for part in [threadArenas, mmapped] {
            sum.calls &+= part.calls
            sum.requestedBytes &+= part.requestedBytes
            sum.usableBytes &+= part.usableBytes
            sum.chunkBytes &+= part.chunkBytes
        }
        return sum
    }

    subscript(flags: ChunkFlags) -> ChunkTally {
        get {
            flags.contains(.mmapped) ? mmapped : flags.contains(.nonMainArena) ? threadArenas : mainArena
        }
        set {
            if flags.contains(.mmapped) {
                mmapped = newValue
            } else if flags.contains(.nonMainArena) {
                threadArenas = newValue
            } else {
                mainArena = newValue
            }
        }
    }
}

/// The live blocks at one moment, by source.
public struct LiveChunks: Sendable, Equatable {
    public var time: UInt64 = 0
    public var sequence: UInt64 = 0
    public var sources = ChunkSources()

    public init() {}
}

/// Requests that sit just above a boundary of the allocator, at one call site: a slightly smaller request would
/// take a smaller size class, or come from the heap instead of a mapping of its own.
public struct BoundaryCandidate: Sendable, Equatable {
    public enum Boundary: Sendable, Equatable {
        /// glibc: the request is at most ``BoundaryCandidate/excess`` bytes above the mmap threshold, so every
        /// call maps (and unmaps) pages of its own.
        case mmapThreshold(threshold: UInt64)
        /// The request takes a larger size class than ``BoundaryCandidate/boundary`` bytes would.
        case sizeClass
    }

    public var kind: Boundary
    /// A request seen at the site, and what the allocator made of it.
    public var requested: UInt64
    public var usable: UInt64
    /// The largest request that stays below the boundary.
    public var boundary: UInt64
    public var calls: UInt64 = 0
    /// Bytes that requests of `boundary` would have saved over all these calls (chunk bytes).
    public var savableBytes: UInt64 = 0

    /// How far the request lies above the boundary.
    public var excess: UInt64 { requested &- boundary }
}

/// One pass's allocator figures: requested against usable bytes by size class, site and thread, where blocks
/// came from (main arena, thread arenas, mmap), the live chunks over time and at the heap's peak, and the frees
/// of mmapped chunks that move glibc's threshold. Memory: the live blocks plus one entry per site and thread;
/// the series over time holds at most ``timelineLimit`` points.
///
/// Only allocations whose usable size the trace recorded (``ChunkFlags/known``) count; ``unknownCalls`` counts
/// the others (traces without the ALLOCATOR record, or recorded with MALLOCTRACE_USABLE=0).
public struct AllocatorView: Sendable {
    public struct SizeClass: Sendable, Equatable {
        /// Requests of ``minimumSize`` … ``maximumSize`` bytes (power-of-two buckets, as the size histogram).
        public var minimumSize: UInt64
        public var maximumSize: UInt64
        public var tally: ChunkTally
    }

    public struct Site: Sendable, Equatable {
        public var sources = ChunkSources()
    }

    /// A site's requests of one size that sit just above a boundary.
    public struct CandidateKey: Hashable, Sendable {
        public var stackID: UInt32
        public var requested: UInt64
    }

    /// A free of an mmapped chunk: glibc raises the threshold to its size when it is larger (dynamic threshold).
    public struct MappedRelease: Sendable, Equatable {
        public var sequence: UInt64
        public var time: UInt64
        public var chunkBytes: UInt64
    }

    struct LiveBlock {
        var requested: UInt64
        var usable: UInt64
        var flags: ChunkFlags
    }

    public static let timelineLimit = 2048
    private static let firstSpacing: UInt64 = 10_000_000

    public let isGlibc: Bool
    public private(set) var sources = ChunkSources()
    public private(set) var unknownCalls: UInt64 = 0
    public private(set) var sites: [UInt32: Site] = [:]
    public private(set) var candidates: [CandidateKey: BoundaryCandidate] = [:]
    public private(set) var threads: [UInt32: ChunkSources] = [:]
    public private(set) var live = LiveChunks()
    /// The live chunks when live requested bytes peaked (the report's heap peak).
    public private(set) var atPeak = LiveChunks()
    /// Live chunks over time: at most one point per spacing (10 ms, doubled whenever the series fills up).
    public private(set) var timeline: [LiveChunks] = []
    public private(set) var mappedReleases: [MappedRelease] = []
    /// The threshold the boundary candidates are judged by (glibc's at start; the report's model refines it).
    public let initialThreshold: UInt64
    private var classes = [ChunkTally](repeating: ChunkTally(), count: 65)
    private var blocks: [UInt64: LiveBlock] = [:]
    private var spacing = AllocatorView.firstSpacing
    private var nextPointTime: UInt64 = 0

    public init(details: AllocatorDetails?) {
        isGlibc = details?.recordsChunkFlags ?? false
        initialThreshold = details?.initialMmapThreshold ?? 0
    }

    public var sizeClasses: [SizeClass] {
        classes.indices.compactMap { index in
            guard classes[index].calls > 0 else { return nil }
            let minimum: UInt64 = index == 0 ? 0 : 1 << (index - 1)
            let maximum: UInt64 = index == 0 ? 0 : (index == 64 ? UInt64.max : (1 << index) - 1)
            return SizeClass(minimumSize: minimum, maximumSize: maximum, tally: classes[index])
        }
    }

    /// The chunk bytes a block takes: usable bytes plus glibc's header (the size word, and for an mmapped
    /// chunk also the prev_size word).
    func chunkBytes(usable: UInt64, flags: ChunkFlags) -> UInt64 {
        guard isGlibc else { return usable }
        return usable &+ (flags.contains(.mmapped) ? 16 : 8)
    }

    public mutating func consume(_ events: Span<AllocatorEvent>) {
        for index in events.indices { consume(events[index]) }
    }

    public mutating func consume(_ event: AllocatorEvent) {
        // Pool blocks (malloctrace_pool_alloc) are the program's own carving of heap blocks, not chunks.
        guard event.poolID == 0 else { return }
        switch event.kind {
        case .allocation:
            guard let usable = event.usableSize else {
                unknownCalls &+= 1
                return
            }
            let chunk = chunkBytes(usable: usable, flags: event.chunk)
            sources[event.chunk].add(requested: event.size, usable: usable, chunk: chunk)
            classes[64 - event.size.leadingZeroBitCount].add(requested: event.size, usable: usable, chunk: chunk)
            sites[event.stackID, default: Site()].sources[event.chunk].add(
                requested: event.size, usable: usable, chunk: chunk)
            if let candidate = candidate(event, usable: usable, chunk: chunk) {
                let key = CandidateKey(stackID: event.stackID, requested: event.size)
                if var known = candidates[key] {
                    known.calls &+= 1
                    known.savableBytes &+= candidate.savableBytes
                    candidates[key] = known
                } else {
                    candidates[key] = candidate
                }
            }
            threads[event.threadID, default: ChunkSources()][event.chunk].add(
                requested: event.size, usable: usable, chunk: chunk)
            blocks[event.address] = LiveBlock(requested: event.size, usable: usable, flags: event.chunk)
            live.sources[event.chunk].add(requested: event.size, usable: usable, chunk: chunk)
            if live.sources.total.requestedBytes > atPeak.sources.total.requestedBytes {
                atPeak = live
                atPeak.time = event.time
                atPeak.sequence = event.sequence
            }
        case .release:
            guard let block = blocks.removeValue(forKey: event.address) else { return }
            let chunk = chunkBytes(usable: block.usable, flags: block.flags)
            live.sources[block.flags].remove(requested: block.requested, usable: block.usable, chunk: chunk)
            if isGlibc && block.flags.contains(.mmapped) {
                mappedReleases.append(MappedRelease(sequence: event.sequence, time: event.time, chunkBytes: chunk))
            }
        case .failedAllocation, .control:
            return
        }
        live.time = event.time
        live.sequence = event.sequence
        if event.time >= nextPointTime { addPoint() }
    }

    private mutating func addPoint() {
        if timeline.count >= Self.timelineLimit {
            timeline = stride(from: 0, to: timeline.count, by: 2).map { timeline[$0] }
            spacing &*= 2
        }
        timeline.append(live)
        nextPointTime = live.time &+ spacing
    }

    /// The live chunks at the end of the pass, as the last point of the series.
    public mutating func finish() {
        if timeline.last != live { timeline.append(live) }
    }

    /// Whether `event` sits just above a boundary of glibc's: the mmap threshold (within 1/8 of it), or a size
    /// class (at most 8 bytes into it) when a request of the class below would save a quarter of the block.
    private func candidate(_ event: AllocatorEvent, usable: UInt64, chunk: UInt64) -> BoundaryCandidate? {
        let requested = event.size
        if isGlibc && event.chunk.contains(.mmapped) {
            // A request whose chunk (request + 8, rounded up to 16) reaches the threshold is mapped.
            let threshold = max(initialThreshold, 16)
            let arenaChunk = AllocatorDetails.glibcUsableSize(requested) &+ 8
            guard arenaChunk >= threshold, requested < threshold &+ threshold / 8 else { return nil }
            let boundary = threshold &- 24
            return BoundaryCandidate(
                kind: .mmapThreshold(threshold: threshold), requested: requested, usable: usable, boundary: boundary,
                calls: 1, savableBytes: chunk &- (boundary &+ 8))
        }
        // glibc's classes are 16 bytes apart: a request at most 8 bytes into a class whose step is a quarter of
        // the chunk or more. (Another allocator's classes are not known here.)
        guard isGlibc, chunk > 32, usable == AllocatorDetails.glibcUsableSize(requested) else { return nil }
        let smallerChunk = chunk &- 16
        let boundary = smallerChunk &- 8
        guard requested > boundary, requested &- boundary <= 8, 16 &* 4 >= chunk else { return nil }
        return BoundaryCandidate(
            kind: .sizeClass, requested: requested, usable: usable, boundary: boundary, calls: 1,
            savableBytes: chunk &- smallerChunk)
    }
}
