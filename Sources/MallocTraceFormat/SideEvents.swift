internal import CMallocTraceFormat

/// Decoding of the events that describe the process rather than the heap: STACK and the sized events
/// (MODULE, MODULE_UNLOAD, RSS_SAMPLE, and unknown ones, which are skipped by their length).
///
/// Side events are rare: they take the cursor by value and return it advanced, which keeps the hot
/// loop's cursor out of memory.
enum SideEvents {
    /// Largest stack a reader accepts; writers stop at MT_MAX_STACK_DEPTH.
    static let maxFrames = Int(MT_MAX_STACK_DEPTH) * 4
    static let maxSegments = 64
    /// Longer module paths than Linux's PATH_MAX, or build ids longer than any linker writes, only come from
    /// damaged or hostile traces; every report would match each frame's path against its patterns, so a path of
    /// megabytes (a few KB of zstd) made a report take minutes.
    static let maxPathBytes = 4096
    static let maxBuildIDBytes = 1024

    static func absorbStack(
        at start: Int, _ cursor: ByteCursor, catalog: inout Catalog
    ) throws(DecodeFailure) -> ByteCursor {
        var cursor = cursor
        let id = try cursor.varint32("stack id")
        let count = Int(try cursor.varint32("frame count"))
        guard count <= maxFrames else {
            throw DecodeFailure(offset: start, reason: "stack \(id) claims \(count) frames")
        }
        var frames = [UInt64]()
        frames.reserveCapacity(count)
        var previous: UInt64 = 0
        for index in 0..<count {
            previous = index == 0 ? try cursor.varint() : previous &+ UInt64(bitPattern: try cursor.zigzag())
            frames.append(previous)
        }
        catalog.define(id, frames: frames)
        return cursor
    }

    /// The payload of the sized event whose length is at `cursor`, and the cursor after the event.
    static func sizedPayload(at start: Int, _ cursor: ByteCursor) throws(DecodeFailure) -> (
        payload: ByteCursor, after: ByteCursor
    ) {
        var cursor = cursor
        let length = try cursor.varint()
        guard length <= UInt64(cursor.remaining) else {
            throw DecodeFailure(offset: start, reason: "event of \(length) bytes runs past its chunk")
        }
        let payload = ByteCursor(cursor.bytes, from: cursor.position, to: cursor.position + Int(length))
        try cursor.skip(Int(length))
        return (payload, cursor)
    }

    static func absorbSizedEvent(
        _ code: UInt8, at start: Int, _ cursor: ByteCursor, threadID: UInt32, time: UInt64, catalog: inout Catalog
    ) throws(DecodeFailure) -> ByteCursor {
        let sized = try sizedPayload(at: start, cursor)
        var payload = sized.payload
        switch code {
        case opcode(MT_EVENT_MODULE): catalog.add(try module(&payload))
        case opcode(MT_EVENT_MODULE_UNLOAD): catalog.unload(try payload.varint32("module id"))
        case opcode(MT_EVENT_RSS_SAMPLE):
            let time = try payload.varint()
            let resident = try payload.varint()
            catalog.residentSamples.append(
                ResidentSample(time: time, residentBytes: resident, breakBytes: try payload.varint()))
        case opcode(MT_EVENT_MAPPING):
            if let mapping = try MappingEvent.decode(&payload, threadID: threadID, time: time) {
                catalog.mappings.append(mapping)
            }
        case opcode(MT_EVENT_MALLOPT):
            let sequence = try payload.varint()
            let parameter = try payload.zigzag()
            let value = try payload.zigzag()
            catalog.malloptCalls.append(
                MalloptCall(
                    sequence: sequence, time: time, parameter: parameter, value: value, result: try payload.varint()))
        // CHUNK_INFO belongs to the allocation before it, which reads it (ChunkDecoder); one found alone (after
        // a failed call) is skipped, as are a newer writer's events.
        default: break
        }
        return sized.after
    }

    static func module(_ payload: inout ByteCursor) throws(DecodeFailure) -> Module {
        let start = payload.position
        /// A count or length of the module, refused above `limit` (`claim` says what it would have been).
        func bounded(_ what: String, _ limit: Int, _ claim: (Int) -> String) throws(DecodeFailure) -> Int {
            let value = Int(try payload.varint32(what))
            guard value <= limit else { throw DecodeFailure(offset: start, reason: "module claims " + claim(value)) }
            return value
        }
        let id = try payload.varint32("module id")
        let bias = try payload.varint()
        let segmentCount = try bounded("segment count", maxSegments) { "\($0) segments" }
        var segments = [Module.Segment]()
        for _ in 0..<segmentCount {
            let segmentStart = try payload.varint()
            segments.append(Module.Segment(start: segmentStart, size: try payload.varint()))
        }
        let buildID = Array(
            try payload.bytes(try bounded("build-id length", maxBuildIDBytes) { "a build id of \($0) bytes" }))
        let pathBytes = try payload.bytes(try bounded("path length", maxPathBytes) { "a path of \($0) bytes" })
        let path = String(decoding: pathBytes, as: UTF8.self)
        return Module(id: id, path: path, loadBias: bias, segments: segments, buildID: buildID)
    }
}
