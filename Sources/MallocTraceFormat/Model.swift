/// The libc function an event came from.
public enum AllocationFunction: UInt8, Sendable, CaseIterable, Codable, CustomStringConvertible, BitwiseCopyable {
    case malloc = 1
    case calloc
    case realloc
    case reallocarray
    case posixMemalign
    case alignedAlloc
    case memalign
    case valloc
    case pvalloc
    case free
    /// The control API (malloctrace.h): a block handed out or given back by a pool, every block of a pool
    /// released at once, a mark, a snapshot. ``pause`` is pausing (``AllocatorEvent/size`` 1) or resuming (0).
    /// ``poolCreate`` and ``poolBacking`` are consumed by the reader and never delivered.
    case poolAlloc = 11
    case poolFree
    case poolDestroy
    case mark
    case snapshot
    case pause
    case poolCreate
    case poolBacking

    /// The C name, as users know it.
    public var description: String {
        switch self {
        case .malloc: "malloc"
        case .calloc: "calloc"
        case .realloc: "realloc"
        case .reallocarray: "reallocarray"
        case .posixMemalign: "posix_memalign"
        case .alignedAlloc: "aligned_alloc"
        case .memalign: "memalign"
        case .valloc: "valloc"
        case .pvalloc: "pvalloc"
        case .free: "free"
        case .poolAlloc: "malloctrace_pool_alloc"
        case .poolFree: "malloctrace_pool_free"
        case .poolDestroy: "malloctrace_pool_destroy"
        case .mark: "malloctrace_mark"
        case .snapshot: "malloctrace_snapshot"
        case .pause: "malloctrace_pause"
        case .poolCreate: "malloctrace_pool_create"
        case .poolBacking: "malloctrace_pool_backing"
        }
    }
}

/// What the allocator made of a block, as far as the trace recorded it (see ``AllocatorDetails``).
public struct ChunkFlags: OptionSet, Sendable, Equatable, BitwiseCopyable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The usable size is known (``AllocatorEvent/usableSlack`` holds it); without this, nothing below is.
    public static let known = ChunkFlags(rawValue: 1)
    /// glibc served the block with a mapping of its own (the chunk's IS_MMAPPED bit).
    public static let mmapped = ChunkFlags(rawValue: 2)
    /// glibc served the block from a thread arena, not the main (brk) one (NON_MAIN_ARENA).
    public static let nonMainArena = ChunkFlags(rawValue: 4)
}

/// One change to the heap, in the global order the tracer assigned (``sequence``).
///
/// Every traced call yields exactly one *primary* event; a realloc that moved or released a block also
/// yields a secondary ``Kind/release`` of the old block just before it.
///
/// Events hold no references (`BitwiseCopyable`), so the reader can hand them out in batches of plain
/// memory. Stored properties are ordered widest first, which keeps the struct at 56 bytes.
public struct AllocatorEvent: Sendable, Equatable, BitwiseCopyable {
    public enum Kind: Sendable, Equatable, BitwiseCopyable {
        /// A block came into existence at ``AllocatorEvent/address``.
        case allocation
        /// The call returned no block (NULL, or an error from posix_memalign).
        case failedAllocation
        /// The block at ``AllocatorEvent/address`` stopped existing.
        case release
        /// Not a heap change: a mark, a snapshot, pausing or resuming (``AllocatorEvent/function``), in the same
        /// sequence order as the heap events. ``AllocatorEvent/address`` holds ``ControlNames/hash(_:)`` of a
        /// mark's or snapshot's name and ``AllocatorEvent/size`` its index in ``TraceReader/controlNames``.
        case control
    }

    /// Position in the process-wide order of heap changes.
    public var sequence: UInt64
    /// Nanoseconds since the process started (resolution: one kernel clock tick).
    public var time: UInt64
    /// Requested bytes (for a release: 0; the reader of the event knows the block's size).
    public var size: UInt64
    public var address: UInt64
    public var alignment: UInt64
    public var threadID: UInt32
    /// Interned call stack (0 = none recorded).
    public var stackID: UInt32
    /// ``usableSlack`` of a block with ``ChunkFlags/known``, else ``poolID``: a pool block has no usable size and
    /// a malloc block no pool, so one field holds either (and the struct stays at 56 bytes).
    private var slackOrPool: UInt32 = 0
    public var kind: Kind
    public var function: AllocationFunction
    /// False only for the release half of a realloc that also produced a block or failed, for control events,
    /// and for releases that were not calls of the program (while paused, a pool's destruction).
    public var isPrimary: Bool
    /// For an allocation: what the allocator made of the block, when recorded.
    public var chunk: ChunkFlags = []

    /// For an allocation with ``ChunkFlags/known``: usable bytes beyond the requested ones (saturated).
    public var usableSlack: UInt32 {
        get { chunk.contains(.known) ? slackOrPool : 0 }
        set { slackOrPool = newValue }
    }

    /// `malloc_usable_size` of the new block, when the trace recorded it.
    public var usableSize: UInt64? { chunk.contains(.known) ? size &+ UInt64(slackOrPool) : nil }
    /// The pool (malloctrace_pool_create) of a pool block; 0 for the malloc family. A pool block's
    /// ``address`` is a key of the reader's (``PoolBlocks/keyTag``), apart from the heap's addresses.
    public var poolID: UInt32 {
        get { chunk.contains(.known) ? 0 : slackOrPool }
        set { slackOrPool = newValue }
    }

    public init(
        kind: Kind, function: AllocationFunction, sequence: UInt64, threadID: UInt32, time: UInt64, size: UInt64,
        address: UInt64, stackID: UInt32, alignment: UInt64 = 0, isPrimary: Bool = true
    ) {
        self.kind = kind
        self.function = function
        self.sequence = sequence
        self.threadID = threadID
        self.time = time
        self.size = size
        self.address = address
        self.stackID = stackID
        self.alignment = alignment
        self.isPrimary = isPrimary
    }
}

/// A loaded ELF object: where it was mapped and how to find its symbols later.
public struct Module: Sendable, Equatable {
    public struct Segment: Sendable, Equatable {
        public var start: UInt64
        public var size: UInt64

        public init(start: UInt64, size: UInt64) {
            self.start = start
            self.size = size
        }

        public func contains(_ address: UInt64) -> Bool { address >= start && address - start < size }
    }

    public var id: UInt32
    public var path: String
    /// Added to the file's virtual addresses to give runtime addresses.
    public var loadBias: UInt64
    public var segments: [Segment]
    public var buildID: [UInt8]
    public var isUnloaded: Bool
    /// Set for the reader's stand-in for a pool (``PoolBlocks/frameAddress(pool:)``): the innermost frame of
    /// every pool block's stack lies in it and reads as the pool's name.
    public var poolName: String?
    /// The reader's module generation (see ``TraceReader/stackGenerations``) when this module was reported:
    /// it was loaded from then until ``unloadedAt`` (excluded), or to the end.
    public var loadedAt: Int = 0
    public var unloadedAt: Int?

    /// True when the module is loaded at module generation `generation`.
    public func isLoaded(at generation: Int) -> Bool {
        loadedAt <= generation && generation < unloadedAt ?? Int.max
    }

    /// The same object at the same place (what the MODULE record says), whenever it was reported.
    public func hasSameMapping(as other: Module) -> Bool {
        id == other.id && path == other.path && loadBias == other.loadBias && segments == other.segments
            && buildID == other.buildID
    }

    public init(id: UInt32, path: String, loadBias: UInt64, segments: [Segment], buildID: [UInt8]) {
        self.id = id
        self.path = path
        self.loadBias = loadBias
        self.segments = segments
        self.buildID = buildID
        self.isUnloaded = false
    }

    public func contains(_ address: UInt64) -> Bool { segments.contains { $0.contains(address) } }

    /// The build-id as lowercase hex, the way debug-file directories name it.
    public var buildIDHex: String { buildID.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// What the tracer knew about the process when it started.
public struct ProcessDetails: Sendable, Equatable {
    public var pid: UInt32
    public var parentPID: UInt32
    /// Wall-clock start, nanoseconds since the Unix epoch.
    public var startRealtime: UInt64
    public var executable: String
    public var arguments: [String]
    public var pageSize: UInt32
    public var maxDepth: UInt32
    public var unwindMode: UInt32
    /// Mean bytes between sample points (`--sample-rate`); 0 when every call was recorded.
    public var sampleRate: UInt32 = 0
    /// `CLOCK_MONOTONIC` at start, in nanoseconds: event times count from it (a reader of a live trace uses it
    /// to tell how far the process's clock has come).
    public var startMonotonic: UInt64 = 0

    /// The arguments joined by spaces, or the executable when there are none. The traced program's text: one line
    /// of output wants it through ``Swift/String/escapingControlCharacters``.
    public var commandLine: String { arguments.isEmpty ? executable : arguments.joined(separator: " ") }
}

/// How the process ended, when it reached the tracer's exit path.
public struct EndDetails: Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        /// exit() or return from main: the library destructor ran.
        case normalExit
        /// `_exit`/`_Exit` was called directly with this status.
        case underscoreExit(status: Int32)
        /// `quick_exit` was called with this status (its handlers ran; destructors did not).
        case quickExit(status: Int32)
        /// The process replaced its image with `exec`; a followed process continues in another trace.
        case exec
        case unknown(UInt32)
    }

    /// Nanoseconds since start.
    public var time: UInt64
    public var lastSequence: UInt64
    public var reason: Reason
}
