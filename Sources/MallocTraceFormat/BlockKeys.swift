internal import CMallocTraceFormat

/// How a version 3 trace names heap blocks (MT_FILE_FLAG_KEYED_BLOCKS): by a key made of the sequence number
/// of the allocation that made the block, instead of its address. Every consumer matches a release with its
/// allocation by equality of ``AllocatorEvent/address`` only, so keys give the same pairs as addresses did,
/// and they repeat far less than addresses, which is what makes the keyed trace small.
///
/// Keys lie between every user-space address and the reader's pool keys (``PoolBlocks/keyTag``), so the three
/// kinds of names never collide.
public enum BlockKey {
    /// The key of the block whose allocation had sequence number `sequence`.
    @inline(__always)
    public static func of(sequence: UInt64) -> UInt64 { base | (sequence & sequenceMask) }

    /// True for a key (a block of a version 3 trace), false for an address. Inlinable, for the analysis's live
    /// table, which asks at every event: bits 59 and up are 0b10 (`MT_BLOCK_KEY_SEQ_BITS`, `MT_BLOCK_KEY_BIT`;
    /// a test checks the literal against them).
    @inlinable
    public static func isKey(_ address: UInt64) -> Bool { address >> 59 == 0b10 }

    private static let base: UInt64 = 1 << MT_BLOCK_KEY_BIT
    private static let sequenceMask: UInt64 = (1 << MT_BLOCK_KEY_SEQ_BITS) - 1
}

/// The (requested size, stack id) pairs of a version 3 trace (`MT_RECORD_PAIRS`): keyed allocations name
/// theirs by index. Owned by the reader and read by every chunk decoder of a pass through ``entries``.
final class BlockPairs {
    struct Pair: Hashable, BitwiseCopyable {
        var size: UInt64
        var stackID: UInt32
    }

    let entries: UnsafeMutableBufferPointer<Pair>

    /// No pairs: a keyed allocation in a trace without a pair table is damage.
    static var none: BlockPairs { BlockPairs(count: 0) }

    private init(count: Int) {
        entries = .allocate(capacity: count)
    }

    deinit { entries.deallocate() }

    /// The table in an `MT_RECORD_PAIRS` payload, compressed or not.
    static func read(_ payload: UnsafeRawBufferPointer, isCompressed: Bool) -> Result<BlockPairs, DecodeFailure> {
        guard isCompressed else { return Result { () throws(DecodeFailure) in try decode(payload) } }
        guard let plain = ZstdFrame.decompress(payload, limit: Int(MT_MAX_PAIRS_PAYLOAD)) else {
            return .failure(
                DecodeFailure(
                    offset: 0, reason: "the pair table is not one zstd frame of at most \(MT_MAX_PAIRS_PAYLOAD) bytes"))
        }
        return plain.withUnsafeBytes { bytes in Result { () throws(DecodeFailure) in try decode(bytes) } }
    }

    /// The table in `payload` (decompressed), which is untrusted: the count must fit what the payload can
    /// hold (two bytes a pair at least), so memory follows the payload's size.
    static func decode(_ payload: UnsafeRawBufferPointer) throws(DecodeFailure) -> BlockPairs {
        var cursor = ByteCursor(payload, from: 0, to: payload.count)
        let count = try cursor.varint()
        guard count <= UInt64(cursor.remaining / 2) else {
            throw DecodeFailure(offset: 0, reason: "the pair table claims \(count) pairs in \(payload.count) bytes")
        }
        let pairs = BlockPairs(count: Int(count))
        for index in 0..<Int(count) {
            let size = try cursor.varint()
            pairs.entries.initializeElement(at: index, to: Pair(size: size, stackID: try cursor.varint32("stack id")))
        }
        return pairs
    }
}
