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

    @inline(__always)
    mutating func byte() throws(DecodeFailure) -> UInt8 {
        guard position < end else { throw DecodeFailure(offset: position, reason: "record ends early") }
        let value = bytes[position]
        position &+= 1  // below end
        return value
    }

    /// An unsigned LEB128 varint of at most 10 bytes whose value fits in 64 bits.
    ///
    /// Where at least ``longestVarint`` bytes remain (everywhere but the last few bytes of a record), no
    /// read can pass `end` and the bytes are decoded without a check per byte.
    @inline(__always)
    mutating func varint() throws(DecodeFailure) -> UInt64 {
        guard end &- position >= Self.longestVarint else { return try checkedVarint() }
        let first = bytes[position]
        if first < 0x80 {
            position &+= 1
            return UInt64(first)
        }
        return try multiByteVarint()
    }

    /// Needs ``longestVarint`` bytes left (so the buffer is not empty and has a base address).
    @inline(__always)
    private mutating func multiByteVarint() throws(DecodeFailure) -> UInt64 {
        // 9 or 10 bytes (values of 2^56 and more) are rare: the byte-by-byte loop.
        guard let (value, length) = Self.shortVarint(at: bytes.baseAddress.unsafelyUnwrapped + position) else {
            return try checkedVarint()
        }
        position &+= length
        return value
    }

    /// The varint at `pointer` if it is at most 8 bytes long, and its length; nil for a longer one.
    /// Reads 8 bytes: the caller guarantees that they are inside the buffer.
    ///
    /// There is no branch on the length: the writer's sizes and pointer deltas have random lengths, and
    /// a byte-by-byte loop mispredicts its exit about once per field. The first byte with bit 7 clear
    /// ends the varint; one bit scan finds it, and three mask-and-shift steps pack the 7-bit groups
    /// together (7+7 bits per 16, 14+14 per 32, 28+28 per 64).
    @inline(__always)
    static func shortVarint(at pointer: UnsafeRawPointer) -> (value: UInt64, length: Int)? {
        let word = UInt64(littleEndian: pointer.loadUnaligned(as: UInt64.self))
        let stops = ~word & 0x8080_8080_8080_8080
        guard stops != 0 else { return nil }
        var value = word & (stops ^ (stops &- 1)) & 0x7f7f_7f7f_7f7f_7f7f
        value = (value & 0x007f_007f_007f_007f) | ((value & 0x7f00_7f00_7f00_7f00) >> 1)
        value = (value & 0x0000_3fff_0000_3fff) | ((value & 0x3fff_0000_3fff_0000) >> 2)
        value = (value & 0x0000_0000_0fff_ffff) | ((value & 0x0fff_ffff_0000_0000) >> 4)
        return (value, stops.trailingZeroBitCount &>> 3 &+ 1)
    }

    /// The general varint loop, checking every byte against `end`.
    @inline(__always)
    private mutating func checkedVarint() throws(DecodeFailure) -> UInt64 {
        let (value, next) = try Self.checkedVarint(bytes, at: position, end: end)
        position = next
        return value
    }

    /// Out of line and taking the position by value, so that callers can keep their cursor in registers.
    @inline(never)
    private static func checkedVarint(
        _ bytes: UnsafeRawBufferPointer, at start: Int, end: Int
    ) throws(DecodeFailure) -> (value: UInt64, next: Int) {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var position = start
        while true {
            guard position < end else { throw DecodeFailure(offset: start, reason: "varint runs past its record") }
            let value = bytes[position]
            position += 1
            // The tenth byte may only carry the 64th bit; anything more is not a 64-bit value.
            if shift == 63 && value > 1 {
                throw DecodeFailure(offset: start, reason: "varint is larger than 64 bits")
            }
            result |= UInt64(value & 0x7f) << shift
            if value < 0x80 { return (result, position) }
            shift += 7
        }
    }

    @inline(__always)
    mutating func zigzag() throws(DecodeFailure) -> Int64 {
        Self.unzigzag(try varint())
    }

    @inline(__always)
    static func unzigzag(_ raw: UInt64) -> Int64 {
        Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// A pointer field of a heap event (docs/trace-format.md 6.1): `last` plus the zigzag delta; a result other
    /// than 0 becomes `last`.
    @inline(__always)
    mutating func pointer(after last: inout UInt64) throws(DecodeFailure) -> UInt64 {
        let value = last &+ UInt64(bitPattern: try zigzag())
        if value != 0 { last = value }
        return value
    }

    /// A realloc's pointer fields (6.4): the argument relative to `last`, the result relative to the argument.
    @inline(__always)
    mutating func reallocPointers(after last: inout UInt64) throws(DecodeFailure) -> (old: UInt64, new: UInt64) {
        let old = last &+ UInt64(bitPattern: try zigzag())
        let new = old &+ UInt64(bitPattern: try zigzag())
        last = Self.pointerAfterRealloc(old: old, new: new, last: last)
        return (old, new)
    }

    /// The `ptr` state after a realloc (6.4): the result if it is not 0, else the argument if it is not 0.
    @inline(__always)
    static func pointerAfterRealloc(old: UInt64, new: UInt64, last: UInt64) -> UInt64 {
        new != 0 ? new : old != 0 ? old : last
    }

    /// A stack id, which must fit in 32 bits.
    @inline(__always)
    mutating func stackID() throws(DecodeFailure) -> UInt32 {
        let start = position
        let value = try varint()
        guard let narrow = UInt32(exactly: value) else {
            throw DecodeFailure(offset: start, reason: "stack id \(value) does not fit in 32 bits")
        }
        return narrow
    }

    /// The longest varint (`MT_MAX_VARINT_BYTES`).
    static let longestVarint = 10

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
