internal import CMallocTraceFormat

/// A trace writer's output (``TraceCompressor``, ``KeyedTraceEncoder``), written out in pieces of about ``flushSize`` bytes.
final class OutputBuffer {
    static let flushSize = 1 << 20

    private var storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 << 20, alignment: 16)
    private(set) var count = 0

    deinit { storage.deallocate() }

    func removeAll() { count = 0 }

    /// `size` bytes at the end, to be filled by the caller (contents undefined).
    func reserve(_ size: Int) -> UnsafeMutableRawBufferPointer {
        if count + size > storage.count {
            let larger = UnsafeMutableRawBufferPointer.allocate(
                byteCount: max(storage.count * 2, count + size), alignment: 16)
            larger.copyMemory(from: UnsafeRawBufferPointer(rebasing: storage[..<count]))
            storage.deallocate()
            storage = larger
        }
        defer { count += size }
        return UnsafeMutableRawBufferPointer(rebasing: storage[count..<count + size])
    }

    func truncate(to newCount: Int) { count = newCount }

    /// A record header with reserved fields and flags zero.
    func appendRecordHeader(kind: UInt8, length: Int) {
        append([kind, 0, 0, 0])
        append(UInt32(length))
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        reserve(bytes.count).copyMemory(from: bytes)
    }

    func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { append($0) } }

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
