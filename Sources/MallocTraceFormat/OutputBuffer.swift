internal import CMallocTraceFormat

/// A growing byte buffer through a plain pointer: a trace writer's output (``TraceCompressor``,
/// ``KeyedTraceEncoder``), written out in pieces of about ``flushSize`` bytes, and the events a thread's chunk
/// is re-encoded into (``ThreadReencoder``), appended a byte or a varint at a time without the uniqueness and
/// capacity checks an `Array` makes per byte, which cost more than the encoding.
final class OutputBuffer {
    static let flushSize = 1 << 20

    private var storage: UnsafeMutableRawBufferPointer
    private(set) var count = 0

    init(capacity: Int = 2 << 20) {
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<count]) }

    func removeAll() { count = 0 }

    /// Room for `additional` more bytes after `count`.
    @inline(__always)
    private func ensureCapacity(_ additional: Int) {
        guard count + additional > storage.count else { return }
        let larger = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(storage.count * 2, count + additional), alignment: 16)
        larger.copyMemory(from: bytes)
        storage.deallocate()
        storage = larger
    }

    /// `size` bytes at the end, to be filled by the caller (contents undefined).
    func reserve(_ size: Int) -> UnsafeMutableRawBufferPointer {
        ensureCapacity(size)
        defer { count += size }
        return UnsafeMutableRawBufferPointer(rebasing: storage[count..<count + size])
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        ensureCapacity(1)
        storage[count] = byte
        count += 1
    }

    /// `value` as a LEB128 varint (docs/trace-format.md 1.1).
    @inline(__always)
    func appendVarint(_ value: UInt64) {
        ensureCapacity(Int(MT_MAX_VARINT_BYTES))
        var value = value
        while value >= 0x80 {
            storage[count] = UInt8(truncatingIfNeeded: value) | 0x80
            count += 1
            value >>= 7
        }
        storage[count] = UInt8(value)
        count += 1
    }

    /// `value` as a zigzag varint (docs/trace-format.md 1.2).
    @inline(__always)
    func appendZigzag(_ value: Int64) { appendVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }

    func truncate(to newCount: Int) { count = newCount }

    /// A record header with reserved fields zero.
    func appendRecordHeader(kind: UInt8, flags: UInt8 = 0, length: Int) {
        append([kind, flags, 0, 0])
        appendLittleEndian(UInt32(length))
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        reserve(bytes.count).copyMemory(from: bytes)
    }

    func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// `value` in its fixed width, little-endian (named apart from `append(_ byte:)`, so that an integer
    /// literal never picks the width by accident).
    func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { append($0) }
    }

    /// The file header (docs/trace-format.md 3).
    func appendFileHeader(version: UInt16, flags: UInt32) {
        append(FormatLayout.magic)
        appendLittleEndian(version)
        appendLittleEndian(UInt16(MemoryLayout<mt_file_header_t>.size))
        appendLittleEndian(flags)
    }

    func patch<T: FixedWidthInteger>(at offset: Int, _ value: T) {
        withUnsafeBytes(of: value.littleEndian) {
            UnsafeMutableRawBufferPointer(rebasing: storage[offset..<offset + $0.count]).copyMemory(from: $0)
        }
    }

    /// Zeros up to the next record boundary (records start at multiples of 8 in the file, and the
    /// buffer holds the file from its start or from a flush at such a boundary).
    func pad() {
        let padding = Self.aligned(count) - count
        if padding > 0 { reserve(padding).initializeMemory(as: UInt8.self, repeating: 0) }
    }

    static func aligned(_ offset: Int) -> Int {
        (offset + Int(MT_RECORD_ALIGNMENT) - 1) & ~(Int(MT_RECORD_ALIGNMENT) - 1)
    }

    func flush(_ write: (UnsafeRawBufferPointer) throws(TraceCompressor.Failure) -> Void) throws(TraceCompressor
        .Failure)
    {
        guard count > 0 else { return }
        try write(UnsafeRawBufferPointer(rebasing: storage[..<count]))
        count = 0
    }
}
