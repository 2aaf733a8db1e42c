internal import CMallocTraceFormat

/// One event as stored in a chunk, before threads are merged.
enum ChunkEvent {
    case allocation(
        AllocationFunction, sequence: UInt64, size: UInt64, address: UInt64, stack: UInt32, alignment: UInt64)
    case reallocation(
        AllocationFunction, before: UInt64, after: UInt64, size: UInt64, old: UInt64, new: UInt64, stack: UInt32)
    case free(sequence: UInt64, address: UInt64)
    case stack(id: UInt32, frames: [UInt64])
    case time(UInt64)
    case module(Module)
    case moduleUnload(UInt32)
    case skipped
}

private func opcode(_ value: mt_event_opcode) -> UInt8 { UInt8(truncatingIfNeeded: value.rawValue) }

/// Decodes the packed event stream of one chunk (see malloctrace_format.h). A chunk is self-contained:
/// its delta state starts at zero.
struct ChunkDecoder {
    /// Largest stack a reader accepts; writers stop at MT_MAX_STACK_DEPTH.
    static let maxFrames = Int(MT_MAX_STACK_DEPTH) * 4
    static let maxSegments = 64

    private var cursor: ByteCursor
    private var lastSequence: UInt64 = 0
    private var lastPointer: UInt64 = 0

    init(bytes: UnsafeRawBufferPointer, start: Int, end: Int) {
        cursor = ByteCursor(bytes, from: start, to: end)
    }

    var position: Int { cursor.position }

    private mutating func sequence() throws(DecodeFailure) -> UInt64 {
        lastSequence &+= try cursor.varint()
        return lastSequence
    }

    private mutating func pointer() throws(DecodeFailure) -> UInt64 {
        let value = lastPointer &+ UInt64(bitPattern: try cursor.zigzag())
        if value != 0 { lastPointer = value }
        return value
    }

    mutating func next() throws(DecodeFailure) -> ChunkEvent? {
        if cursor.isAtEnd { return nil }
        let start = cursor.position
        let code = try cursor.byte()
        switch code {
        case opcode(MT_EVENT_MALLOC)...opcode(MT_EVENT_PVALLOC)
        where code != opcode(MT_EVENT_REALLOC)
            && code != opcode(MT_EVENT_REALLOCARRAY):
            let function = AllocationFunction(rawValue: code) ?? .malloc
            let seq = try sequence()
            let size = try cursor.varint()
            let address = try pointer()
            let stack = try cursor.varint32("stack id")
            let alignment = code >= opcode(MT_EVENT_POSIX_MEMALIGN) ? try cursor.varint() : 0
            return .allocation(
                function, sequence: seq, size: size, address: address, stack: stack, alignment: alignment)
        case opcode(MT_EVENT_REALLOC), opcode(MT_EVENT_REALLOCARRAY):
            let function: AllocationFunction = code == opcode(MT_EVENT_REALLOC) ? .realloc : .reallocarray
            let before = try sequence()
            let after = try sequence()
            let size = try cursor.varint()
            let old = lastPointer &+ UInt64(bitPattern: try cursor.zigzag())
            let new = old &+ UInt64(bitPattern: try cursor.zigzag())
            if new != 0 {
                lastPointer = new
            } else if old != 0 {
                lastPointer = old
            }
            let stack = try cursor.varint32("stack id")
            return .reallocation(function, before: before, after: after, size: size, old: old, new: new, stack: stack)
        case opcode(MT_EVENT_FREE):
            let seq = try sequence()
            return .free(sequence: seq, address: try pointer())
        case opcode(MT_EVENT_STACK):
            let id = try cursor.varint32("stack id")
            let count = Int(try cursor.varint32("frame count"))
            guard count <= Self.maxFrames else {
                throw DecodeFailure(offset: start, reason: "stack \(id) claims \(count) frames")
            }
            var frames = [UInt64]()
            frames.reserveCapacity(count)
            var previous: UInt64 = 0
            for index in 0..<count {
                previous = index == 0 ? try cursor.varint() : previous &+ UInt64(bitPattern: try cursor.zigzag())
                frames.append(previous)
            }
            return .stack(id: id, frames: frames)
        case opcode(MT_EVENT_TIME):
            return .time(try cursor.varint())
        case opcode(MT_EVENT_FIRST_SIZED)...:
            let length = try cursor.varint()
            guard length <= UInt64(cursor.remaining) else {
                throw DecodeFailure(offset: start, reason: "event of \(length) bytes runs past its chunk")
            }
            var payload = ByteCursor(cursor.bytes, from: cursor.position, to: cursor.position + Int(length))
            try cursor.skip(Int(length))
            switch code {
            case opcode(MT_EVENT_MODULE): return .module(try Self.module(&payload))
            case opcode(MT_EVENT_MODULE_UNLOAD): return .moduleUnload(try payload.varint32("module id"))
            default: return .skipped
            }
        default:
            throw DecodeFailure(offset: start, reason: "unknown event opcode 0x\(String(code, radix: 16))")
        }
    }

    private static func module(_ payload: inout ByteCursor) throws(DecodeFailure) -> Module {
        let start = payload.position
        let id = try payload.varint32("module id")
        let bias = try payload.varint()
        let segmentCount = Int(try payload.varint32("segment count"))
        guard segmentCount <= maxSegments else {
            throw DecodeFailure(offset: start, reason: "module claims \(segmentCount) segments")
        }
        var segments = [Module.Segment]()
        for _ in 0..<segmentCount {
            let segmentStart = try payload.varint()
            segments.append(Module.Segment(start: segmentStart, size: try payload.varint()))
        }
        let buildID = Array(try payload.bytes(Int(try payload.varint32("build-id length"))))
        let pathBytes = try payload.bytes(Int(try payload.varint32("path length")))
        let path = String(decoding: pathBytes, as: UTF8.self)
        return Module(id: id, path: path, loadBias: bias, segments: segments, buildID: buildID)
    }
}
