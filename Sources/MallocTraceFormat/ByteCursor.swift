/// Thrown when bytes inside a record do not decode; the caller turns it into a diagnostic.
struct DecodeFailure: Error {
    var offset: Int
    var reason: String
}

/// Reads little-endian integers and LEB128 varints from a bounded range of a buffer. Every read is
/// bounds-checked: hostile input ends in a ``DecodeFailure``, never a trap.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    var position: Int
    let end: Int

    init(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        self.bytes = bytes
        self.position = start
        self.end = min(end, bytes.count)
    }

    var isAtEnd: Bool { position >= end }
    var remaining: Int { max(0, end - position) }

    mutating func byte() throws(DecodeFailure) -> UInt8 {
        guard position < end else { throw DecodeFailure(offset: position, reason: "record ends early") }
        let value = bytes[position]
        position += 1
        return value
    }

    mutating func varint() throws(DecodeFailure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = position
        while true {
            guard position < end else { throw DecodeFailure(offset: start, reason: "varint runs past its record") }
            let value = bytes[position]
            position += 1
            // The tenth byte may only carry the 64th bit; anything more is not a 64-bit value.
            if shift == 63 && value > 1 {
                throw DecodeFailure(offset: start, reason: "varint is larger than 64 bits")
            }
            result |= UInt64(value & 0x7f) << shift
            if value < 0x80 { return result }
            shift += 7
        }
    }

    mutating func zigzag() throws(DecodeFailure) -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// A varint that must fit in 32 bits (ids, counts).
    mutating func varint32(_ what: String) throws(DecodeFailure) -> UInt32 {
        let start = position
        let value = try varint()
        guard let narrow = UInt32(exactly: value) else {
            throw DecodeFailure(offset: start, reason: "\(what) \(value) does not fit in 32 bits")
        }
        return narrow
    }

    mutating func skip(_ count: Int) throws(DecodeFailure) {
        guard count >= 0, count <= remaining else {
            throw DecodeFailure(offset: position, reason: "length \(count) runs past its record")
        }
        position += count
    }

    mutating func bytes(_ count: Int) throws(DecodeFailure) -> UnsafeRawBufferPointer {
        let start = position
        try skip(count)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<start + count])
    }

    func littleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + MemoryLayout<T>.size]))
        }
        return T(littleEndian: value)
    }
}
