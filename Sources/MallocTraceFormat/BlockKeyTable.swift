/// The encoder's live blocks: address → key (``KeyedTraceEncoder``). Open addressing with linear probing and
/// backward-shift deletion, as the analysis's live-block table, whose reasons it shares: a `Dictionary` costs
/// several times more per operation, and the encoder touches this table at every heap event. Address 0 is the
/// empty marker (no block lives at 0). Memory: 16 bytes an entry, at most three quarters full.
struct BlockKeyTable {
    private struct Entry {
        var address: UInt64
        var key: UInt64
    }

    private var entries: UnsafeMutableBufferPointer<Entry>
    private(set) var count = 0

    init() {
        entries = .allocate(capacity: 1 << 12)
        entries.initialize(repeating: Entry(address: 0, key: 0))
    }

    /// Frees the entries; the table is not used afterwards.
    func deallocate() { entries.deallocate() }

    @inline(__always)
    private func home(_ address: UInt64) -> Int {
        Int(truncatingIfNeeded: (address &* 0x9E37_79B9_7F4A_7C15).multipliedFullWidth(by: UInt64(entries.count)).high)
    }

    /// The key of the block live at `address`, if any.
    func key(at address: UInt64) -> UInt64? {
        var index = home(address)
        while true {
            let entry = entries[index]
            if entry.address == address { return entry.key }
            if entry.address == 0 { return nil }
            index = index + 1 == entries.count ? 0 : index + 1
        }
    }

    /// Makes `key` the key of the block at `address` (which is not 0 and has no block yet).
    mutating func insert(_ address: UInt64, key: UInt64) {
        if (count + 1) * 4 > entries.count * 3 { grow() }
        var index = home(address)
        while entries[index].address != 0 { index = index + 1 == entries.count ? 0 : index + 1 }
        entries[index] = Entry(address: address, key: key)
        count += 1
    }

    /// Removes the block at `address` and returns its key, if there was one.
    mutating func remove(_ address: UInt64) -> UInt64? {
        var index = home(address)
        while entries[index].address != address {
            if entries[index].address == 0 { return nil }
            index = index + 1 == entries.count ? 0 : index + 1
        }
        let key = entries[index].key
        // Backward shift: move later entries of the probe run into the hole when their home allows it.
        var hole = index
        var next = index
        while true {
            next = next + 1 == entries.count ? 0 : next + 1
            let entry = entries[next]
            if entry.address == 0 { break }
            let wanted = home(entry.address)
            let fits = hole <= next ? (wanted <= hole || wanted > next) : (wanted <= hole && wanted > next)
            if fits {
                entries[hole] = entry
                hole = next
            }
        }
        entries[hole] = Entry(address: 0, key: 0)
        count -= 1
        return key
    }

    private mutating func grow() {
        let old = entries
        entries = .allocate(capacity: old.count * 2)
        entries.initialize(repeating: Entry(address: 0, key: 0))
        count = 0
        for entry in old where entry.address != 0 { insert(entry.address, key: entry.key) }
        old.deallocate()
    }

    /// Calls `body` with every live block, in no particular order.
    func forEach(_ body: (_ address: UInt64, _ key: UInt64) -> Void) {
        for entry in entries where entry.address != 0 { body(entry.address, entry.key) }
    }
}
