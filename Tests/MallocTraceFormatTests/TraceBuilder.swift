import CMallocTraceFormat

/// Builds trace bytes by hand, the way the C writer lays them out, for reader tests.
struct TraceBuilder {
    private(set) var bytes: [UInt8] = []

    /// Version 1, as the preload library writes, unless told otherwise.
    init(version: UInt16 = UInt16(MT_FORMAT_VERSION_UNCOMPRESSED), flags: UInt32 = 0) {
        bytes += Array("MTRACE\u{1a}\n".utf8)
        append(version)
        append(UInt16(16))
        append(flags)
    }

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    mutating func record(kind: UInt32, flags: UInt8 = 0, payload: [UInt8]) {
        bytes.append(UInt8(kind))
        bytes += [flags, 0, 0]
        append(UInt32(payload.count))
        bytes += payload
        while bytes.count % Int(MT_RECORD_ALIGNMENT) != 0 { bytes.append(0) }
    }

    mutating func process(pid: UInt32 = 42, executable: String = "/bin/demo", arguments: [String] = ["demo", "x"]) {
        var payload = Fields()
        payload.fixed(pid)
        payload.fixed(UInt32(1))
        payload.fixed(UInt64(1_700_000_000_000_000_000))
        payload.fixed(UInt64(5_000))
        payload.fixed(UInt32(4096))
        payload.fixed(UInt32(64))
        payload.fixed(UInt32(0))
        let argv: [UInt8] = arguments.flatMap { (argument: String) -> [UInt8] in Array(argument.utf8) + [0] }
        payload.fixed(UInt32(executable.utf8.count))
        payload.fixed(UInt32(argv.count))
        payload.fixed(UInt32(0))
        payload.bytes += Array(executable.utf8) + argv
        record(kind: MT_RECORD_PROCESS.rawValue, payload: payload.bytes)
    }

    /// A chunk whose capacity exceeds its used bytes by `slack`, like a live writer's.
    mutating func chunk(thread: UInt32, events: Events, slack: Int = 0, usedOverride: UInt32? = nil) {
        var payload = Fields()
        payload.fixed(thread)
        payload.fixed(usedOverride ?? UInt32(events.bytes.count))
        payload.bytes += events.bytes + [UInt8](repeating: 0, count: slack)
        record(kind: MT_RECORD_CHUNK.rawValue, payload: payload.bytes)
    }

    mutating func end(time: UInt64 = 9_000, lastSequence: UInt64 = 0, status: Int32 = -1, how: UInt32 = 0) {
        var payload = Fields()
        payload.fixed(time)
        payload.fixed(lastSequence)
        payload.fixed(status)
        payload.fixed(how)
        record(kind: MT_RECORD_END.rawValue, payload: payload.bytes)
    }
}

/// Little-endian fixed fields and LEB128 varints.
struct Fields {
    var bytes: [UInt8] = []

    mutating func fixed<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func zigzag(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }
}

/// An event stream for one chunk, with the writer's per-chunk delta state.
struct Events {
    private var fields = Fields()
    private var lastSequence: UInt64 = 0
    private var lastPointer: UInt64 = 0
    var bytes: [UInt8] { fields.bytes }

    private static func code(_ opcode: mt_event_opcode) -> UInt8 { UInt8(opcode.rawValue) }

    mutating func time(_ nanoseconds: UInt64) {
        fields.bytes.append(Self.code(MT_EVENT_TIME))
        fields.varint(nanoseconds)
    }

    mutating func stack(_ id: UInt64, _ frames: [UInt64]) {
        fields.bytes.append(Self.code(MT_EVENT_STACK))
        fields.varint(id)
        fields.varint(UInt64(frames.count))
        for (index, frame) in frames.enumerated() {
            if index == 0 {
                fields.varint(frame)
            } else {
                fields.zigzag(Int64(bitPattern: frame &- frames[index - 1]))
            }
        }
    }

    private mutating func sequence(_ value: UInt64) {
        fields.varint(value - lastSequence)
        lastSequence = value
    }

    private mutating func pointer(_ value: UInt64) {
        fields.zigzag(Int64(bitPattern: value &- lastPointer))
        if value != 0 { lastPointer = value }
    }

    mutating func allocation(
        _ opcode: mt_event_opcode = MT_EVENT_MALLOC, seq: UInt64, size: UInt64, at address: UInt64, stack: UInt64,
        alignment: UInt64 = 0
    ) {
        fields.bytes.append(Self.code(opcode))
        sequence(seq)
        fields.varint(size)
        pointer(address)
        fields.varint(stack)
        if opcode.rawValue >= MT_EVENT_POSIX_MEMALIGN.rawValue { fields.varint(alignment) }
    }

    mutating func free(seq: UInt64, at address: UInt64) {
        fields.bytes.append(Self.code(MT_EVENT_FREE))
        sequence(seq)
        pointer(address)
    }

    mutating func realloc(before: UInt64, after: UInt64, size: UInt64, from old: UInt64, to new: UInt64, stack: UInt64)
    {
        fields.bytes.append(Self.code(MT_EVENT_REALLOC))
        sequence(before)
        sequence(after)
        fields.varint(size)
        fields.zigzag(Int64(bitPattern: old &- lastPointer))
        fields.zigzag(Int64(bitPattern: new &- old))
        if new != 0 {
            lastPointer = new
        } else if old != 0 {
            lastPointer = old
        }
        fields.varint(stack)
    }

    mutating func module(id: UInt64, bias: UInt64, segments: [(UInt64, UInt64)], buildID: [UInt8], path: String) {
        var payload = Fields()
        payload.varint(id)
        payload.varint(bias)
        payload.varint(UInt64(segments.count))
        for (start, size) in segments {
            payload.varint(start)
            payload.varint(size)
        }
        payload.varint(UInt64(buildID.count))
        payload.bytes += buildID
        payload.varint(UInt64(path.utf8.count))
        payload.bytes += Array(path.utf8)
        sized(Self.code(MT_EVENT_MODULE), payload.bytes)
    }

    mutating func sized(_ opcode: UInt8, _ payload: [UInt8]) {
        fields.bytes.append(opcode)
        fields.varint(UInt64(payload.count))
        fields.bytes += payload
    }

    mutating func raw(_ bytes: [UInt8]) { fields.bytes += bytes }
}
