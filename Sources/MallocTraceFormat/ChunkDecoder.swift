internal import CMallocTraceFormat

/// Decodes the packed event stream of one chunk (see malloctrace_format.h). A chunk is self-contained:
/// its delta state starts at zero.
///
/// Heap events are written into the caller's ``AllocatorEvent`` (no intermediate value per event); side
/// events (stacks, modules, time) are absorbed on the way, stacks and modules into the ``Catalog``. A
/// realloc becomes two events, the release of the old block and then the new block (see
/// ``splitReallocation(_:before:after:size:old:new:stack:into:)``).
struct ChunkDecoder {
    private var cursor: ByteCursor
    private let threadID: UInt32
    private var lastSequence: UInt64 = 0
    private var lastPointer: UInt64 = 0
    /// Version 3: the allocation sequence number of the block the last keyed release released.
    private var lastReleased: UInt64 = 0
    /// Time of the following events (TIME events set it).
    private var time: UInt64 = 0
    /// The allocation half of a realloc, due after its release half.
    private var pending: AllocatorEvent?
    /// The pair table keyed allocations refer to (version 3; empty in older traces).
    private let pairs: UnsafeBufferPointer<BlockPairs.Pair>
    /// The non-main-arena bit of the chunk's last CHUNK_INFO that was not mmapped: what an allocation without
    /// one has (see MT_EVENT_CHUNK_INFO).
    private var arena: UInt8 = 0
    /// Tests turn this off to compare the common-event loop with the general decoder.
    private let usesCommonEventLoop: Bool
    /// For events decompressed from a compressed chunk: the file offset of its record. Positions in
    /// `bytes` are then not file offsets, so diagnostics name the record and the position in its events.
    private let compressedRecord: Int?

    init(
        bytes: UnsafeRawBufferPointer, start: Int, end: Int, threadID: UInt32, usesCommonEventLoop: Bool = true,
        compressedRecord: Int? = nil, pairs: UnsafeBufferPointer<BlockPairs.Pair> = .init(start: nil, count: 0)
    ) {
        cursor = ByteCursor(bytes, from: start, to: end)
        self.threadID = threadID
        self.pairs = pairs
        self.usesCommonEventLoop = usesCommonEventLoop
        self.compressedRecord = compressedRecord
    }

    /// A decoder that has nothing to decode.
    init() {
        self.init(bytes: UnsafeRawBufferPointer(start: nil, count: 0), start: 0, end: 0, threadID: 0)
    }

    /// Decodes heap events into `batch` from index `count` on, advancing `count`; true when `batch` is
    /// full, false at the end of the chunk. A damaged event ends the chunk with a diagnostic; the events
    /// before it are kept.
    mutating func decode(
        into batch: UnsafeMutableBufferPointer<AllocatorEvent>, count: inout Int, catalog: inout Catalog
    ) -> Bool {
        while true {
            if pending == nil && usesCommonEventLoop {
                decodeCommonEvents(into: batch, count: &count, rule: catalog.usableRule)
            }
            guard count < batch.count else { return true }
            if let pending {
                batch[count] = pending
                self.pending = nil
            } else {
                do {
                    guard try nextHeapEvent(into: &batch[count], catalog: &catalog) else { return false }
                } catch {
                    catalog.diagnostics.append(diagnostic(for: error))
                    cursor.position = cursor.end
                    pending = nil
                    return false
                }
            }
            count &+= 1  // below batch.count
        }
    }

    private func diagnostic(for failure: DecodeFailure) -> TraceDiagnostic {
        guard let compressedRecord else {
            return TraceDiagnostic(offset: failure.offset, message: failure.reason + "; rest of this chunk skipped")
        }
        return TraceDiagnostic(
            offset: compressedRecord,
            message: "\(failure.reason) at byte \(failure.offset) of the compressed chunk's events;"
                + " rest of this chunk skipped")
    }

    /// Bytes the common-event loop needs left at the start of an event: the opcode, then four varints
    /// each read as one 8-byte word (the last one's word may start 25 bytes in).
    private static let commonEventMargin = 1 + 4 * 8

    /// The common events in a tight loop: MALLOC, CALLOC and FREE, keyed or not, whose varints have at most 8 bytes,
    /// at least ``commonEventMargin`` bytes before the end of the chunk. The loop keeps its state in
    /// locals and has no failure path: at anything else (another opcode, a longer varint, a stack id
    /// over 32 bits, the last bytes of the chunk) it stops before that event, and the general decoder
    /// takes it, errors included; it also stops when `batch` is full. Each event it does decode comes out
    /// exactly as the general decoder would give it (tests compare the two).
    /// An allocation followed by a CHUNK_INFO event is left to the general decoder too.
    @inline(never)
    private mutating func decodeCommonEvents(
        into batch: UnsafeMutableBufferPointer<AllocatorEvent>, count: inout Int, rule: UsableSizeRule
    ) {
        guard let base = cursor.bytes.baseAddress else { return }
        // Every 8-byte read below starts at most `commonEventMargin - 8` bytes after `position`, so
        // while `position <= limit` all of them end before `cursor.end`.
        let limit = cursor.end &- Self.commonEventMargin
        var position = cursor.position
        var sequence = lastSequence
        var pointer = lastPointer
        var released = lastReleased
        defer {
            cursor.position = position
            lastSequence = sequence
            lastPointer = pointer
            lastReleased = released
        }
        while position <= limit && count < batch.count {
            let code = base.load(fromByteOffset: position, as: UInt8.self)
            var next = position &+ 1
            /// The next varint, or nil (the event is then left to the general decoder).
            func field() -> UInt64? {
                // Sequence deltas and stack ids are mostly one byte: worth a (well predicted) branch.
                let first = base.load(fromByteOffset: next, as: UInt8.self)
                if first < 0x80 {
                    next &+= 1
                    return UInt64(first)
                }
                guard let (value, length) = ByteCursor.shortVarint(at: base + next) else { return nil }
                next &+= length
                return value
            }
            switch code {
            case opcode(MT_EVENT_KEYED_FREE), opcode(MT_EVENT_KEYED_FREE_NEAR):
                guard let sequenceDelta = field(), let reference = field() else { return }
                sequence &+= sequenceDelta
                released = Self.releasedSequence(code, sequence: sequence, reference: reference, last: released)
                batch[count] = AllocatorEvent(
                    kind: .release, function: .free, sequence: sequence, threadID: threadID, time: time, size: 0,
                    address: BlockKey.of(sequence: released), stackID: 0)
            case opcode(MT_EVENT_KEYED_MALLOC), opcode(MT_EVENT_KEYED_CALLOC):
                guard let sequenceDelta = field(), let index = field(), index < UInt64(pairs.count) else { return }
                if next < cursor.end && base.load(fromByteOffset: next, as: UInt8.self) == opcode(MT_EVENT_CHUNK_INFO) {
                    return
                }
                sequence &+= sequenceDelta
                let pair = pairs[Int(index)]
                batch[count] = AllocatorEvent(
                    kind: .allocation, function: code == opcode(MT_EVENT_KEYED_MALLOC) ? .malloc : .calloc,
                    sequence: sequence, threadID: threadID, time: time, size: pair.size,
                    address: BlockKey.of(sequence: sequence), stackID: pair.stackID)
                if rule != .unknown { derive(&batch[count], rule: rule) }
            case opcode(MT_EVENT_FREE):
                guard let sequenceDelta = field(), let pointerDelta = field() else { return }
                sequence &+= sequenceDelta
                let address = pointer &+ UInt64(bitPattern: ByteCursor.unzigzag(pointerDelta))
                if address != 0 { pointer = address }
                batch[count] = AllocatorEvent(
                    kind: .release, function: .free, sequence: sequence, threadID: threadID, time: time, size: 0,
                    address: address, stackID: 0)
            case opcode(MT_EVENT_MALLOC), opcode(MT_EVENT_CALLOC):
                guard let sequenceDelta = field(), let size = field(), let pointerDelta = field(),
                    let stack = field(), let stackID = UInt32(exactly: stack)
                else { return }
                let address = pointer &+ UInt64(bitPattern: ByteCursor.unzigzag(pointerDelta))
                if address != 0 && next < cursor.end
                    && base.load(fromByteOffset: next, as: UInt8.self) == opcode(MT_EVENT_CHUNK_INFO)
                {
                    return
                }
                sequence &+= sequenceDelta
                if address != 0 { pointer = address }
                batch[count] = AllocatorEvent(
                    kind: address == 0 ? .failedAllocation : .allocation,
                    function: code == opcode(MT_EVENT_MALLOC) ? .malloc : .calloc, sequence: sequence,
                    threadID: threadID, time: time, size: size, address: address, stackID: stackID)
                if address != 0 && rule != .unknown { derive(&batch[count], rule: rule) }
            default:
                return
            }
            position = next
            count &+= 1
        }
    }

    /// Decodes up to the next heap event into `event`; false at the end of the chunk.
    @inline(__always)
    private mutating func nextHeapEvent(
        into event: inout AllocatorEvent, catalog: inout Catalog
    ) throws(DecodeFailure) -> Bool {
        while !cursor.isAtEnd {
            if try step(into: &event, catalog: &catalog) { return true }
        }
        return false
    }

    /// Decodes the event at the cursor (which is before the end); false for a side event.
    @inline(__always)
    private mutating func step(into event: inout AllocatorEvent, catalog: inout Catalog) throws(DecodeFailure) -> Bool {
        let start = cursor.position
        let code = try cursor.byte()
        switch code {
        case opcode(MT_EVENT_FREE):
            let seq = try sequence()
            let address = try pointer()
            event = AllocatorEvent(
                kind: .release, function: .free, sequence: seq, threadID: threadID, time: time, size: 0,
                address: address, stackID: 0)
        case opcode(MT_EVENT_MALLOC), opcode(MT_EVENT_CALLOC),
            opcode(MT_EVENT_POSIX_MEMALIGN)...opcode(MT_EVENT_PVALLOC):
            let seq = try sequence()
            let size = try varint()
            let address = try pointer()
            let stack = try stackID()
            let alignment = code >= opcode(MT_EVENT_POSIX_MEMALIGN) ? try varint() : 0
            // `AllocationFunction(rawValue:)` is a call: skip it for the common case.
            let function = code == opcode(MT_EVENT_MALLOC) ? .malloc : AllocationFunction(rawValue: code) ?? .malloc
            event = AllocatorEvent(
                kind: address == 0 ? .failedAllocation : .allocation, function: function, sequence: seq,
                threadID: threadID, time: time, size: size, address: address, stackID: stack, alignment: alignment)
            if address != 0 { try readChunkInfo(into: &event, rule: catalog.usableRule) }
        case opcode(MT_EVENT_REALLOC), opcode(MT_EVENT_REALLOCARRAY):
            let before = try sequence()
            let after = try sequence()
            let size = try varint()
            let (old, new) = try cursor.reallocPointers(after: &lastPointer)
            let stack = try stackID()
            splitReallocation(
                code == opcode(MT_EVENT_REALLOC) ? .realloc : .reallocarray, before: before, after: after,
                size: size, old: old, new: new, stack: stack, into: &event)
            if new != 0 {
                if var result = pending {
                    try readChunkInfo(into: &result, rule: catalog.usableRule)
                    pending = result
                } else {
                    try readChunkInfo(into: &event, rule: catalog.usableRule)
                }
            }
        case opcode(MT_EVENT_KEYED_FREE), opcode(MT_EVENT_KEYED_FREE_NEAR):
            let seq = try sequence()
            let reference = try varint()
            lastReleased = Self.releasedSequence(code, sequence: seq, reference: reference, last: lastReleased)
            event = AllocatorEvent(
                kind: .release, function: .free, sequence: seq, threadID: threadID, time: time, size: 0,
                address: BlockKey.of(sequence: lastReleased), stackID: 0)
        case opcode(MT_EVENT_KEYED_MALLOC), opcode(MT_EVENT_KEYED_CALLOC),
            opcode(MT_EVENT_KEYED_POSIX_MEMALIGN)...opcode(MT_EVENT_KEYED_PVALLOC):
            let seq = try sequence()
            let pair = try self.pair()
            let alignment = code >= opcode(MT_EVENT_KEYED_POSIX_MEMALIGN) ? try varint() : 0
            event = AllocatorEvent(
                kind: .allocation,
                function: AllocationFunction(rawValue: code &- opcode(MT_EVENT_KEYED_BASE)) ?? .malloc,
                sequence: seq, threadID: threadID, time: time, size: pair.size, address: BlockKey.of(sequence: seq),
                stackID: pair.stackID, alignment: alignment)
            try readChunkInfo(into: &event, rule: catalog.usableRule)
        case opcode(MT_EVENT_KEYED_REALLOC), opcode(MT_EVENT_KEYED_REALLOCARRAY):
            let before = try sequence()
            let after = try sequence()
            let pair = try self.pair()
            let reference = try varint()
            if reference != 0 { lastReleased = before &- reference }
            splitReallocation(
                code == opcode(MT_EVENT_KEYED_REALLOC) ? .realloc : .reallocarray, before: before, after: after,
                size: pair.size, old: reference == 0 ? 0 : BlockKey.of(sequence: lastReleased),
                new: BlockKey.of(sequence: after), stack: pair.stackID, into: &event)
            if var result = pending {
                try readChunkInfo(into: &result, rule: catalog.usableRule)
                pending = result
            } else {
                try readChunkInfo(into: &event, rule: catalog.usableRule)
            }
        case opcode(MT_EVENT_TIME):
            time = try varint()
            return false
        case opcode(MT_EVENT_STACK):
            cursor = try SideEvents.absorbStack(at: start, cursor, catalog: &catalog)
            return false
        case opcode(MT_EVENT_POOL_CREATE)...opcode(MT_EVENT_SNAPSHOT):
            cursor = try SideEvents.absorbControlEvent(
                code, at: start, cursor, threadID: threadID, time: time, catalog: &catalog, into: &event)
        case opcode(MT_EVENT_FIRST_SIZED)...:
            cursor = try SideEvents.absorbSizedEvent(
                code, at: start, cursor, threadID: threadID, time: time, catalog: &catalog)
            return false
        default:
            throw DecodeFailure(offset: start, reason: "unknown event opcode 0x\(String(code, radix: 16))")
        }
        return true
    }

    /// glibc's realloc: a NULL result with size 0 freed the old block; with size > 0 it failed and the old
    /// block is intact. Otherwise the old block (if any) is released first and the new one exists after.
    private mutating func splitReallocation(
        _ function: AllocationFunction, before: UInt64, after: UInt64, size: UInt64, old: UInt64, new: UInt64,
        stack: UInt32, into event: inout AllocatorEvent
    ) {
        let release = AllocatorEvent(
            kind: .release, function: function, sequence: before, threadID: threadID, time: time, size: 0,
            address: old, stackID: stack, isPrimary: new == 0 && size == 0)
        let result = AllocatorEvent(
            kind: new == 0 ? .failedAllocation : .allocation, function: function, sequence: after,
            threadID: threadID, time: time, size: size, address: new, stackID: stack)
        if new == 0 && size == 0 && old != 0 {
            event = release
        } else if old != 0 && new != 0 {
            event = release
            pending = result
        } else {
            event = result
        }
    }

    /// The usable size and chunk flags of `event`, a new block: from the CHUNK_INFO event that follows it, or
    /// derived by `rule` when none does.
    private mutating func readChunkInfo(into event: inout AllocatorEvent, rule: UsableSizeRule) throws(DecodeFailure) {
        guard rule != .unknown else { return }
        guard !cursor.isAtEnd,
            cursor.bytes.load(fromByteOffset: cursor.position, as: UInt8.self) == opcode(MT_EVENT_CHUNK_INFO)
        else {
            derive(&event, rule: rule)
            return
        }
        let start = cursor.position
        _ = try cursor.byte()
        let sized = try SideEvents.sizedPayload(at: start, cursor)
        cursor = sized.after
        var payload = sized.payload
        let value = try payload.varint()
        let mmapped = value & 2 != 0
        let nonMain = UInt8(value & 1)
        if !mmapped { arena = nonMain }
        event.usableSlack = UInt32(clamping: value >> 2)
        event.chunk = [.known]
        if mmapped { event.chunk.insert(.mmapped) }
        if nonMain != 0 { event.chunk.insert(.nonMainArena) }
    }

    /// What an allocation without a CHUNK_INFO event got: a chunk of the current arena (glibc) or exactly the
    /// requested size.
    @inline(__always)
    private func derive(_ event: inout AllocatorEvent, rule: UsableSizeRule) {
        event.chunk = arena != 0 ? [.known, .nonMainArena] : [.known]
        if rule == .glibc {
            event.usableSlack = UInt32(clamping: AllocatorDetails.glibcUsableSize(event.size) &- event.size)
        }
    }

    @inline(__always)
    private mutating func varint() throws(DecodeFailure) -> UInt64 { try cursor.varint() }

    @inline(__always)
    private mutating func sequence() throws(DecodeFailure) -> UInt64 {
        lastSequence &+= try varint()
        return lastSequence
    }

    @inline(__always)
    private mutating func pointer() throws(DecodeFailure) -> UInt64 { try cursor.pointer(after: &lastPointer) }

    /// The (size, stack) pair a keyed allocation names.
    @inline(__always)
    private mutating func pair() throws(DecodeFailure) -> BlockPairs.Pair {
        let start = cursor.position
        let index = try varint()
        guard index < UInt64(pairs.count) else {
            throw DecodeFailure(
                offset: start, reason: "pair \(index) is not in the trace's table of \(pairs.count) pairs")
        }
        return pairs[Int(index)]
    }

    @inline(__always)
    private mutating func stackID() throws(DecodeFailure) -> UInt32 { try cursor.stackID() }

    /// What the key of the block a KEYED_FREE or KEYED_FREE_NEAR releases is made of (docs/trace-format.md 6.9).
    @inline(__always)
    private static func releasedSequence(_ code: UInt8, sequence: UInt64, reference: UInt64, last: UInt64) -> UInt64 {
        code == opcode(MT_EVENT_KEYED_FREE)
            ? sequence &- reference : last &+ UInt64(bitPattern: ByteCursor.unzigzag(reference))
    }
}
