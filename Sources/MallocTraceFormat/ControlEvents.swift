internal import CMallocTraceFormat

/// Names of marks, snapshots and pools, as events refer to them.
public enum ControlNames {
    /// The longest name a reader keeps (the writer cuts names at 256 bytes).
    static let maxBytes = 1024

    /// FNV-1a of the name's UTF-8 bytes: control events carry it, so that a filter can recognise a mark by
    /// name while the trace is read, before the table of names is complete.
    public static func hash(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }
}

/// How pool blocks stay apart from heap blocks, and how their stacks name their pool.
public enum PoolBlocks {
    /// Pool blocks are keyed apart from heap addresses (a pool's first block often starts where its backing
    /// block does, and two pools may hand out the same address): the reader gives each live pool block a key
    /// of its own, with the top two bits set, which no user-space address has.
    public static let keyTag: UInt64 = 0xC000_0000_0000_0000

    /// True for a pool block's key (``AllocatorEvent/address`` of a pool block).
    public static func isKey(_ address: UInt64) -> Bool { address & keyTag == keyTag }

    /// The innermost frame of every stack of a pool's blocks: an address in kernel space, which no user stack
    /// holds, inside a stand-in module named after the pool (``Module/poolName``).
    public static func frameAddress(pool: UInt32) -> UInt64 { 0xFFFF_FFFF_0000_0000 | UInt64(pool) }

    /// The pool whose frame `address` is, if it is one.
    public static func pool(ofFrame address: UInt64) -> UInt32? {
        address >> 32 == 0xFFFF_FFFF ? UInt32(truncatingIfNeeded: address) : nil
    }

    /// Stack ids from here on are the reader's: one per pool and stack of the pool's blocks.
    public static let firstSyntheticStack: UInt32 = 0xF000_0000
}

/// A mark or a snapshot (malloctrace_mark, malloctrace_snapshot), or a pause or resume.
public struct TraceMark: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case mark, snapshot, pause, resume
    }

    public var kind: Kind
    /// Empty for pause and resume.
    public var name: String
    public var sequence: UInt64
    /// Nanoseconds since start (precise, unlike heap events' times).
    public var time: UInt64
    public var threadID: UInt32

    public init(kind: Kind, name: String, sequence: UInt64, time: UInt64, threadID: UInt32) {
        self.kind = kind
        self.name = name
        self.sequence = sequence
        self.time = time
        self.threadID = threadID
    }
}

/// A pool (malloctrace_pool_create).
public struct TracePool: Sendable, Equatable {
    public var id: UInt32
    public var name: String
    /// Where it was created (0: unknown, as for a pool created before the trace began).
    public var stackID: UInt32
    /// Heap blocks the pool declared as its backing (malloctrace_pool_backing), in sequence order.
    public var backingBlocks: [UInt64] = []
}

extension SideEvents {
    /// Decodes one of the control API's events (0x88-0x8F) into `event`. Every number is absolute; none
    /// touches the chunk's delta state.
    static func absorbControlEvent(
        _ code: UInt8, at start: Int, _ cursor: ByteCursor, threadID: UInt32, time: UInt64, catalog: inout Catalog,
        into event: inout AllocatorEvent
    ) throws(DecodeFailure) -> ByteCursor {
        let sized = try sizedPayload(at: start, cursor)
        var payload = sized.payload
        catalog.hasControlEvents = true
        let sequence = try payload.varint()
        event = AllocatorEvent(
            kind: .control, function: .mark, sequence: sequence, threadID: threadID, time: time, size: 0, address: 0,
            stackID: 0, isPrimary: false)
        switch code {
        case opcode(MT_EVENT_POOL_CREATE):
            event.function = .poolCreate
            event.poolID = try payload.varint32("pool id")
            event.stackID = try payload.varint32("stack id")
            event.size = UInt64(catalog.internName(try name(&payload)))
        case opcode(MT_EVENT_POOL_ALLOC):
            event.poolID = try payload.varint32("pool id")
            event.address = try payload.varint()
            event.size = try payload.varint()
            event.stackID = try payload.varint32("stack id")
            event.kind = .allocation
            event.function = .poolAlloc
            event.isPrimary = true
        case opcode(MT_EVENT_POOL_FREE):
            event.poolID = try payload.varint32("pool id")
            event.address = try payload.varint()
            event.kind = .release
            event.function = .poolFree
            event.isPrimary = true
        case opcode(MT_EVENT_POOL_DESTROY):
            event.function = .poolDestroy
            event.poolID = try payload.varint32("pool id")
        case opcode(MT_EVENT_POOL_BACKING):
            event.function = .poolBacking
            event.poolID = try payload.varint32("pool id")
            event.address = try payload.varint()
        case opcode(MT_EVENT_PAUSE):
            event.function = .pause
            event.time = try payload.varint()
            event.size = try payload.varint() == 0 ? 0 : 1
        default:  // MARK, SNAPSHOT
            event.function = code == opcode(MT_EVENT_MARK) ? .mark : .snapshot
            event.time = try payload.varint()
            let text = try name(&payload)
            event.address = ControlNames.hash(text)
            event.size = UInt64(catalog.internName(text))
        }
        return sized.after
    }

    private static func name(_ payload: inout ByteCursor) throws(DecodeFailure) -> String {
        let start = payload.position
        let length = Int(try payload.varint32("name length"))
        guard length <= ControlNames.maxBytes else {
            throw DecodeFailure(
                offset: start, reason: "name of \(length) bytes is longer than \(ControlNames.maxBytes)")
        }
        return String(decoding: try payload.bytes(length), as: UTF8.self)
    }
}
