/// A growing byte buffer for encoded events (``ThreadReencoder``): appends write through a plain pointer,
/// without the uniqueness and capacity checks an `Array` makes per byte, which cost more than the encoding.
final class EventWriter {
    private var storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
    private(set) var count = 0

    deinit { storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<count]) }

    func removeAll() { count = 0 }

    /// Room for `additional` more bytes.
    @inline(__always)
    private func reserve(_ additional: Int) {
        guard count + additional > storage.count else { return }
        let larger = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(storage.count * 2, count + additional), alignment: 16)
        larger.copyMemory(from: bytes)
        storage.deallocate()
        storage = larger
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        reserve(1)
        storage[count] = byte
        count += 1
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        UnsafeMutableRawBufferPointer(rebasing: storage[count..<count + bytes.count]).copyMemory(from: bytes)
        count += bytes.count
    }

    /// `value` as a LEB128 varint (docs/trace-format.md 1.1).
    @inline(__always)
    func appendVarint(_ value: UInt64) {
        reserve(10)
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
}
