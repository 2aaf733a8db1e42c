internal import CMallocTraceFormat

/// One thread's events on their way from version 1 to version 3 (``KeyedTraceEncoder``): reads the thread's
/// chunks in file order, stops at each heap event until the encoder has decided its blocks' keys (in the
/// global sequence order, which only the encoder sees), and writes the event keyed, or as a version 1 event
/// whose pointers are the keys when the keyed forms cannot say it. Side events are checked as the reader
/// checks them and copied as they are, in place.
struct ThreadReencoder {
    /// A chunk of the input: its whole record (for giving pages back) and its events.
    struct ChunkSpan {
        var record: Range<Int>
        var events: Range<Int>
    }

    /// What the thread's input holds next.
    enum Step { case event, chunkEnded, finished }

    let threadID: UInt32
    private let chunks: [ChunkSpan]
    private let input: UnsafeRawBufferPointer
    private var nextChunk = 0
    private(set) var openChunk: ChunkSpan?
    private var cursor: ByteCursor
    /// The input chunk's delta state (docs/trace-format.md 6.1).
    private var inSequence: UInt64 = 0
    private var inPointer: UInt64 = 0

    /// The output chunk's events and delta state. An output chunk may hold several input chunks of the thread
    /// (larger units compress better); ``arena`` is the reader's CHUNK_INFO state at its end (see
    /// ``finishInputChunk(unitLimit:)``), `afterAllocation` whether the last event written made a block.
    let out = OutputBuffer(capacity: 64 << 10)
    private var outSequence: UInt64 = 0
    private var outPointer: UInt64 = 0
    /// The reader's `released` state (the key of the last block a keyed event released; docs/trace-format.md 6.9).
    private var outReleased: UInt64 = 0
    private var arena: UInt64 = 0
    private var afterAllocation = false

    /// The heap event waiting for its keys; ``nextSequence`` is that of its next half.
    private var event = HeapEvent()
    private var releasedKey: UInt64?
    private var allocatedKey: (sequence: UInt64, isNew: Bool)?
    private(set) var nextSequence: UInt64 = 0
    private var tookRelease = false

    private struct HeapEvent {
        var code: UInt8 = 0
        var sequence: UInt64 = 0
        var sequenceAfter: UInt64 = 0
        var size: UInt64 = 0
        var old: UInt64 = 0
        var new: UInt64 = 0
        var stackID: UInt32 = 0
        var alignment: UInt64 = 0

        var isReallocation: Bool { code == opcode(MT_EVENT_REALLOC) || code == opcode(MT_EVENT_REALLOCARRAY) }
    }

    init(threadID: UInt32, chunks: [ChunkSpan], input: UnsafeRawBufferPointer) {
        self.threadID = threadID
        self.chunks = chunks
        self.input = input
        cursor = ByteCursor(input, from: 0, to: 0)
    }

    /// Copies side events until the next heap event (then ``nextSequence`` is its first half's), the end of
    /// the open chunk (``closeChunk()`` then writes it out and opens the next) or the end of the thread.
    mutating func advance(checking catalog: inout Catalog) throws(DecodeFailure) -> Step {
        while true {
            guard openChunk != nil else {
                guard nextChunk < chunks.count else { return .finished }
                open(chunks[nextChunk])
                nextChunk += 1
                continue
            }
            if cursor.isAtEnd { return .chunkEnded }
            let start = cursor.position
            let code = try cursor.byte()
            switch code {
            case opcode(MT_EVENT_MALLOC)...opcode(MT_EVENT_FREE):
                try readHeapEvent(code)
                return .event
            case opcode(MT_EVENT_TIME):
                _ = try cursor.varint()
            case opcode(MT_EVENT_STACK):
                cursor = try SideEvents.absorbStack(at: start, cursor, catalog: &catalog)
            case opcode(MT_EVENT_POOL_BACKING):
                // The reader matches the backing block's address with a heap block, which has a key here.
                throw DecodeFailure(offset: start, reason: "a pool claims heap blocks (malloctrace_pool_backing)")
            case opcode(MT_EVENT_POOL_CREATE)...opcode(MT_EVENT_SNAPSHOT):
                var scratch = AllocatorEvent(
                    kind: .control, function: .mark, sequence: 0, threadID: 0, time: 0, size: 0, address: 0,
                    stackID: 0)
                cursor = try SideEvents.absorbControlEvent(
                    code, at: start, cursor, threadID: threadID, time: 0, catalog: &catalog, into: &scratch)
            case opcode(MT_EVENT_CHUNK_INFO):
                let sized = try SideEvents.sizedPayload(at: start, cursor)
                cursor = sized.after
                // The reader takes a CHUNK_INFO right after a new block as that block's (ChunkDecoder.readChunkInfo).
                var payload = sized.payload
                if afterAllocation, let value = try? payload.varint(), value & 2 == 0 { arena = value & 1 }
            case opcode(MT_EVENT_FIRST_SIZED)...:
                cursor = try SideEvents.absorbSizedEvent(
                    code, at: start, cursor, threadID: threadID, time: 0, catalog: &catalog)
            default:
                throw DecodeFailure(offset: start, reason: "unknown event opcode 0x\(String(code, radix: 16))")
            }
            out.append(UnsafeRawBufferPointer(rebasing: input[start..<cursor.position]))
            afterAllocation = false
        }
    }

    /// At the end of an input chunk: true when ``out`` must be written out now as a chunk of its own (then
    /// ``closeChunk()``), false when the next input chunk continues it. A unit ends at `unitLimit` bytes, before
    /// it could outgrow what a reader accepts, at the thread's end, and when the reader's CHUNK_INFO state is not
    /// the zero every chunk starts with (the events that follow were written for that zero).
    mutating func finishInputChunk(unitLimit: Int) -> Bool {
        openChunk = nil
        guard nextChunk < chunks.count, arena == 0, out.count < unitLimit else { return true }
        // Room for the next chunk's events even if each grew by half (keys in version 1 events are long).
        let next = chunks[nextChunk].events.count
        guard out.count + next + next / 2 <= Int(MT_MAX_DECOMPRESSED_CHUNK) else { return true }
        // A chunk starts at time 0 for the reader; the writer's first TIME event follows.
        out.append(opcode(MT_EVENT_TIME))
        out.appendVarint(0)
        open(chunks[nextChunk], continuingOutput: true)
        nextChunk += 1
        return false
    }

    /// Ends the output chunk once its events are written out (``out``): the next ``advance(checking:)`` opens the
    /// next input chunk, with fresh delta state on both sides.
    mutating func closeChunk() {
        out.removeAll()
        (outSequence, outPointer, outReleased, arena, afterAllocation) = (0, 0, 0, 0, false)
    }

    private mutating func open(_ chunk: ChunkSpan, continuingOutput: Bool = false) {
        openChunk = chunk
        cursor = ByteCursor(input, from: chunk.events.lowerBound, to: chunk.events.upperBound)
        (inSequence, inPointer) = (0, 0)
        if !continuingOutput { (outSequence, outPointer, outReleased) = (0, 0, 0) }
    }

    @inline(__always)
    private mutating func readHeapEvent(_ code: UInt8) throws(DecodeFailure) {
        event = HeapEvent(code: code)
        inSequence &+= try cursor.varint()
        event.sequence = inSequence
        switch code {
        case opcode(MT_EVENT_FREE):
            event.old = try cursor.pointer(after: &inPointer)
        case opcode(MT_EVENT_REALLOC), opcode(MT_EVENT_REALLOCARRAY):
            inSequence &+= try cursor.varint()
            event.sequenceAfter = inSequence
            event.size = try cursor.varint()
            (event.old, event.new) = try cursor.reallocPointers(after: &inPointer)
            event.stackID = try cursor.stackID()
        default:
            event.size = try cursor.varint()
            event.new = try cursor.pointer(after: &inPointer)
            event.stackID = try cursor.stackID()
            if code >= opcode(MT_EVENT_POSIX_MEMALIGN) { event.alignment = try cursor.varint() }
        }
        nextSequence = event.sequence
        tookRelease = false
        releasedKey = nil
        allocatedKey = nil
    }

    /// Applies the waiting event's next half to the live blocks, in sequence order (the reader's). Returns true
    /// when the event is complete and written to ``out``; false when its second half (a realloc's new block)
    /// is due at ``nextSequence``.
    mutating func take(_ keys: inout KeyState) -> Bool {
        if event.isReallocation && !tookRelease {
            // The reader releases the old block when the call freed or moved it (ChunkDecoder.splitReallocation).
            if event.old != 0 && (event.new != 0 || event.size == 0) { releasedKey = keys.table.remove(event.old) }
            tookRelease = true
            nextSequence = event.sequenceAfter
            return false
        }
        switch event.code {
        case opcode(MT_EVENT_FREE):
            if event.old != 0 { releasedKey = keys.table.remove(event.old) }
            writeFree()
        default:
            let sequence = event.isReallocation ? event.sequenceAfter : event.sequence
            if event.new != 0 {
                // An address that is live already lost its free (untraced): the block keeps its key, so that every
                // consumer replaces it exactly as it replaced the address.
                if let live = keys.table.key(at: event.new) {
                    allocatedKey = (live, false)
                } else {
                    keys.table.insert(event.new, key: sequence)
                    allocatedKey = (sequence, true)
                }
            }
            if event.isReallocation { writeReallocation(&keys.pairs) } else { writeAllocation(&keys.pairs) }
        }
        afterAllocation = event.new != 0 && event.code != opcode(MT_EVENT_FREE)
        return true
    }

    // MARK: Writing

    @inline(__always)
    private static func varintLength(_ value: UInt64) -> Int { max(1, (64 - value.leadingZeroBitCount + 6) / 7) }

    @inline(__always)
    private mutating func sequenceField(_ sequence: UInt64) {
        out.appendVarint(sequence &- outSequence)
        outSequence = sequence
    }

    @inline(__always)
    private mutating func pointerField(_ value: UInt64, from base: UInt64) {
        out.appendZigzag(Int64(bitPattern: value &- base))
    }

    /// The address the reader must see for the new block: its key, or 0 for a failed call.
    private var visibleNew: UInt64 { allocatedKey.map { BlockKey.of(sequence: $0.sequence) } ?? 0 }

    /// The address the reader must see for the released block: its key when it was live, else the address
    /// itself (a block allocated before tracing: an unmatched free, as in version 1).
    private var visibleOld: UInt64 {
        guard event.old != 0 else { return 0 }
        return releasedKey.map { BlockKey.of(sequence: $0) } ?? event.old
    }

    @inline(__always)
    private mutating func writeFree() {
        if let key = releasedKey, event.sequence > key {
            // Whichever is shorter: how long ago the block was allocated, or how far from the last one released.
            let reference = event.sequence &- key
            let near = Int64(bitPattern: key &- outReleased)
            let nearBits = UInt64(bitPattern: (near << 1) ^ (near >> 63))
            let isNear = Self.varintLength(nearBits) < Self.varintLength(reference)
            out.append(opcode(isNear ? MT_EVENT_KEYED_FREE_NEAR : MT_EVENT_KEYED_FREE))
            sequenceField(event.sequence)
            out.appendVarint(isNear ? nearBits : reference)
            outReleased = key
            return
        }
        out.append(opcode(MT_EVENT_FREE))
        sequenceField(event.sequence)
        let old = visibleOld
        pointerField(old, from: outPointer)
        if old != 0 { outPointer = old }
    }

    @inline(__always)
    private mutating func writeAllocation(_ pairs: inout PairInterner) {
        let isAligned = event.code >= opcode(MT_EVENT_POSIX_MEMALIGN)
        if let key = allocatedKey, key.isNew {
            out.append(event.code &+ opcode(MT_EVENT_KEYED_BASE))
            sequenceField(event.sequence)
            out.appendVarint(UInt64(pairs.index(size: event.size, stackID: event.stackID)))
        } else {
            out.append(event.code)
            sequenceField(event.sequence)
            out.appendVarint(event.size)
            let new = visibleNew
            pointerField(new, from: outPointer)
            if new != 0 { outPointer = new }
            out.appendVarint(UInt64(event.stackID))
        }
        if isAligned { out.appendVarint(event.alignment) }
    }

    private mutating func writeReallocation(_ pairs: inout PairInterner) {
        if let key = allocatedKey, key.isNew {
            let reference: UInt64? =
                event.old == 0 ? 0 : releasedKey.flatMap { event.sequence > $0 ? event.sequence &- $0 : nil }
            if let reference {
                out.append(event.code &+ opcode(MT_EVENT_KEYED_BASE))
                sequenceField(event.sequence)
                sequenceField(event.sequenceAfter)
                out.appendVarint(UInt64(pairs.index(size: event.size, stackID: event.stackID)))
                out.appendVarint(reference)
                if reference != 0 { outReleased = event.sequence &- reference }
                return
            }
        }
        out.append(event.code)
        sequenceField(event.sequence)
        sequenceField(event.sequenceAfter)
        out.appendVarint(event.size)
        let (old, new) = (visibleOld, visibleNew)
        pointerField(old, from: outPointer)
        pointerField(new, from: old)
        outPointer = ByteCursor.pointerAfterRealloc(old: old, new: new, last: outPointer)
        out.appendVarint(UInt64(event.stackID))
    }
}

/// What the encoder knows across threads: the live blocks' keys and the pairs defined so far.
struct KeyState {
    var table = BlockKeyTable()
    var pairs = PairInterner()
}
