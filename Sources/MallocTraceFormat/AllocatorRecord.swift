internal import CMallocTraceFormat

/// Which allocator served the traced calls and what the trace records about its blocks (an
/// `MT_RECORD_ALLOCATOR` record, written before the first event; absent from older traces).
public struct AllocatorDetails: Sendable, Equatable {
    /// True when the real malloc was glibc's own (ptmalloc), not one preloaded after the tracer.
    public var isGlibc: Bool
    /// The C library's version (`gnu_get_libc_version`), such as "2.36"; nil when unknown.
    public var libcVersion: String?
    /// Every allocation event carries the block's usable size (``AllocatorEvent/usableSize``).
    public var recordsUsableSizes: Bool
    /// glibc's chunk flags (mmapped, non-main arena) are recorded (``AllocatorEvent/chunk``).
    public var recordsChunkFlags: Bool
    /// The program's own anonymous mappings and program-break moves are recorded (`run --mmap`).
    public var recordsMappings: Bool
    /// glibc's mmap threshold at start: 128 KiB unless `MALLOC_MMAP_THRESHOLD_` or a tunable set it.
    public var initialMmapThreshold: UInt64
    /// glibc raises the threshold when an mmapped chunk larger than it is freed (until a setting fixes it).
    public var thresholdIsDynamic: Bool

    public init(
        isGlibc: Bool, libcVersion: String?, recordsUsableSizes: Bool, recordsChunkFlags: Bool,
        recordsMappings: Bool, initialMmapThreshold: UInt64, thresholdIsDynamic: Bool
    ) {
        self.isGlibc = isGlibc
        self.libcVersion = libcVersion
        self.recordsUsableSizes = recordsUsableSizes
        self.recordsChunkFlags = recordsChunkFlags
        self.recordsMappings = recordsMappings
        self.initialMmapThreshold = initialMmapThreshold
        self.thresholdIsDynamic = thresholdIsDynamic
    }

    /// Decodes one record's payload; nil when it is too small.
    static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int, length: Int) -> AllocatorDetails? {
        guard length >= MemoryLayout<mt_allocator_record_t>.size else { return nil }
        let cursor = ByteCursor(bytes, from: offset, to: offset + length)
        let features = cursor.field(\mt_allocator_record_t.features, of: offset)
        let major = cursor.field(\mt_allocator_record_t.libc_major, of: offset)
        let minor = cursor.field(\mt_allocator_record_t.libc_minor, of: offset)
        return AllocatorDetails(
            isGlibc: cursor.field(\mt_allocator_record_t.allocator, of: offset) == MT_ALLOCATOR_GLIBC.rawValue,
            libcVersion: major == 0 ? nil : "\(major).\(minor)",
            recordsUsableSizes: features & MT_ALLOCATOR_USABLE_SIZES.rawValue != 0,
            recordsChunkFlags: features & MT_ALLOCATOR_CHUNK_FLAGS.rawValue != 0,
            recordsMappings: features & MT_ALLOCATOR_MAPPINGS.rawValue != 0,
            initialMmapThreshold: cursor.field(\mt_allocator_record_t.mmap_threshold, of: offset),
            thresholdIsDynamic: cursor.field(\mt_allocator_record_t.threshold_is_dynamic, of: offset) != 0)
    }

    /// glibc's usable size for a request served from an arena: its chunk (request + 8, rounded up to 16, at
    /// least 32) less the 8-byte size word. Saturates instead of overflowing on absurd sizes.
    public static func glibcUsableSize(_ requested: UInt64) -> UInt64 {
        let (padded, overflow) = requested.addingReportingOverflow(8 + 15)
        guard !overflow else { return requested }
        return max(UInt64(MT_GLIBC_MIN_CHUNK), padded & ~15) - 8
    }

    /// How the decoder fills in the usable size of an allocation that has no CHUNK_INFO event.
    var usableRule: UsableSizeRule {
        guard recordsUsableSizes else { return .unknown }
        return recordsChunkFlags ? .glibc : .requested
    }
}

/// What an allocation without a CHUNK_INFO event got (see `MT_EVENT_CHUNK_INFO`).
enum UsableSizeRule: Sendable {
    /// Nothing is recorded (older traces, or recording turned off).
    case unknown
    /// A chunk of the thread's current arena: glibc's rounding.
    case glibc
    /// Exactly the requested size.
    case requested

}

/// A call the program made to map memory or move the program break itself (`run --mmap`): an
/// `MT_EVENT_MAPPING` event. Allocators' own calls are not in it (glibc maps through internal functions).
public struct MappingEvent: Sendable, Equatable {
    public enum Call: Sendable, Equatable {
        /// An anonymous mapping of ``MappingEvent/length`` bytes at ``MappingEvent/address``.
        case mmap
        /// ``MappingEvent/length`` bytes at ``MappingEvent/address`` unmapped (any mapping: the reader matches it).
        case munmap
        /// The mapping at ``MappingEvent/address`` (``MappingEvent/length`` bytes) now lies at
        /// ``MappingEvent/newAddress`` with ``MappingEvent/newLength`` bytes.
        case mremap
        /// The program break moved from ``MappingEvent/address`` to ``MappingEvent/newAddress`` (brk or sbrk).
        case moveBreak
    }

    public var call: Call
    public var sequence: UInt64
    /// Nanoseconds since start (coarse clock, as heap events).
    public var time: UInt64
    public var threadID: UInt32
    public var stackID: UInt32
    public var address: UInt64
    public var length: UInt64
    public var newAddress: UInt64
    public var newLength: UInt64
    /// mmap's `prot` and `flags` arguments (0 for other calls).
    public var protection: UInt32
    public var flags: UInt32

    public init(
        call: Call, sequence: UInt64, time: UInt64, threadID: UInt32, stackID: UInt32, address: UInt64,
        length: UInt64, newAddress: UInt64 = 0, newLength: UInt64 = 0, protection: UInt32 = 0, flags: UInt32 = 0
    ) {
        self.call = call
        self.sequence = sequence
        self.time = time
        self.threadID = threadID
        self.stackID = stackID
        self.address = address
        self.length = length
        self.newAddress = newAddress
        self.newLength = newLength
        self.protection = protection
        self.flags = flags
    }

    /// Decodes a MAPPING event's payload; nil for a call this reader does not know.
    static func decode(
        _ payload: inout ByteCursor, threadID: UInt32, time: UInt64
    ) throws(DecodeFailure) -> MappingEvent? {
        let sequence = try payload.varint()
        let call = try payload.varint()
        let stackID = try payload.varint32("stack id")
        let a = try payload.varint()
        let b = try payload.varint()
        let c = try payload.varint()
        let d = try payload.varint()
        var event = MappingEvent(
            call: .mmap, sequence: sequence, time: time, threadID: threadID, stackID: stackID, address: a, length: b)
        switch call {
        case UInt64(MT_MAPPING_MMAP.rawValue):
            event.protection = UInt32(truncatingIfNeeded: c)
            event.flags = UInt32(truncatingIfNeeded: d)
        case UInt64(MT_MAPPING_MUNMAP.rawValue): event.call = .munmap
        case UInt64(MT_MAPPING_MREMAP.rawValue):
            event.call = .mremap
            event.newAddress = c
            event.newLength = d
        case UInt64(MT_MAPPING_BRK.rawValue), UInt64(MT_MAPPING_SBRK.rawValue):
            event.call = .moveBreak
            event.length = 0
            event.newAddress = b
        default: return nil
        }
        return event
    }
}

/// A `mallopt` call of the program (an `MT_EVENT_MALLOPT` event): glibc's `M_MMAP_THRESHOLD` (-3) and friends.
public struct MalloptCall: Sendable, Equatable {
    public var sequence: UInt64
    public var time: UInt64
    public var parameter: Int64
    public var value: Int64
    /// mallopt's result: 1 on success, 0 on error.
    public var result: UInt64

    public init(sequence: UInt64, time: UInt64, parameter: Int64, value: Int64, result: UInt64) {
        self.sequence = sequence
        self.time = time
        self.parameter = parameter
        self.value = value
        self.result = result
    }
}
