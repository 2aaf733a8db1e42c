/// Interns the (requested size, stack id) pairs of a version 3 trace (``KeyedTraceEncoder``): indices in order
/// of first use, and the `MT_RECORD_PAIRS` payload that lists them.
///
/// A program allocates from few pairs over and over, so a small direct-mapped cache answers most lookups
/// before the dictionary does.
struct PairInterner {
    private struct CacheEntry {
        var size: UInt64
        var stackID: UInt32
        /// Index + 1; 0 marks an empty entry.
        var indexPlusOne: UInt32
    }

    private static let cacheBits = 12
    private var cache = [CacheEntry](repeating: CacheEntry(size: 0, stackID: 0, indexPlusOne: 0), count: 1 << cacheBits)
    private var indices: [BlockPairs.Pair: UInt32] = [:]
    /// The payload so far, without its leading count.
    private(set) var table: [UInt8] = []

    var count: Int { indices.count }

    /// The index of (`size`, `stackID`), defined now if it is new.
    @inline(__always)
    mutating func index(size: UInt64, stackID: UInt32) -> UInt32 {
        let hash = (size &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(stackID) &* 0xC2B2_AE3D_27D4_EB4F)
        let slot = Int(truncatingIfNeeded: hash >> UInt64(64 - Self.cacheBits))
        let cached = cache[slot]
        if cached.indexPlusOne != 0 && cached.size == size && cached.stackID == stackID {
            return cached.indexPlusOne - 1
        }
        let pair = BlockPairs.Pair(size: size, stackID: stackID)
        let index: UInt32
        if let known = indices[pair] {
            index = known
        } else {
            index = UInt32(truncatingIfNeeded: indices.count)
            indices[pair] = index
            table.appendVarint(size)
            table.appendVarint(UInt64(stackID))
        }
        cache[slot] = CacheEntry(size: size, stackID: stackID, indexPlusOne: index &+ 1)
        return index
    }

    /// The `MT_RECORD_PAIRS` payload: the count, then the pairs in index order.
    func payload() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(table.count + 10)
        bytes.appendVarint(UInt64(count))
        return bytes + table
    }
}
