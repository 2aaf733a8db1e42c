/// The live blocks: address → (requested size, site slot), open addressing with linear probing and
/// backward-shift deletion (no tombstones, so lookups stay short however many blocks come and go).
///
/// A `Dictionary` costs several times more per operation here, and this table is touched by every event.
/// Address 0 is the empty marker; the analyzer never inserts it. Lookups and updates are O(1) expected.
/// The table is at most half full, so that probe runs stay short.
struct AddressTable {
    /// Key, size and slot side by side: a lookup touches one cache line, not three.
    struct Entry {
        var key: UInt64
        var size: UInt64
        var slot: Int32
    }

    private var entries: [Entry]
    private(set) var count = 0

    init(capacity: Int = 1 << 12) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        entries = Array(repeating: Entry(key: 0, size: 0, slot: 0), count: size)
    }

    /// Makes room for `additional` more blocks, so that that many inserts need no growth.
    mutating func reserve(additional: Int) {
        while (count + additional) * 2 > entries.count { grow() }
    }

    /// Runs `body` on the entries in place: one copy-on-write check for any number of operations.
    /// `body` may insert at most as many new blocks as were reserved (``reserve(additional:)``).
    mutating func withEntries<Result>(_ body: (inout Entries) -> Result) -> Result {
        let (result, newCount) = entries.withUnsafeMutableBufferPointer { buffer in
            var view = Entries(buffer: buffer, count: count)
            let result = body(&view)
            return (result, view.count)
        }
        count = newCount
        return result
    }

    /// Inserts or replaces; returns the previous value for `key` if there was one.
    @discardableResult
    mutating func insert(_ key: UInt64, size: UInt64, slot: Int32) -> (size: UInt64, slot: Int32)? {
        reserve(additional: 1)
        return withEntries { $0.insert(key, size: size, slot: slot) }
    }

    mutating func remove(_ key: UInt64) -> (size: UInt64, slot: Int32)? {
        withEntries { $0.remove(key) }
    }

    /// Calls `body` with every entry, in no particular order.
    func forEach(_ body: (_ key: UInt64, _ size: UInt64, _ slot: Int32) -> Void) {
        for entry in entries where entry.key != 0 { body(entry.key, entry.size, entry.slot) }
    }

    private mutating func grow() {
        MemoryBudget.reserve(
            entries.count * 2 * MemoryLayout<Entry>.stride, for: "the table of \(count) live blocks")
        let old = entries
        entries = Array(repeating: Entry(key: 0, size: 0, slot: 0), count: entries.count * 2)
        count = 0
        withEntries { table in
            for entry in old where entry.key != 0 {
                _ = table.insert(entry.key, size: entry.size, slot: entry.slot)
            }
        }
    }

    /// The table's operations on its entries in place (see ``withEntries(_:)``).
    struct Entries {
        fileprivate let buffer: UnsafeMutableBufferPointer<Entry>
        fileprivate(set) var count: Int

        fileprivate init(buffer: UnsafeMutableBufferPointer<Entry>, count: Int) {
            self.buffer = buffer
            self.count = count
        }

        /// `buffer.count` is a power of two: every index is masked with this, so none is out of range.
        private var mask: Int { buffer.count &- 1 }

        @inline(__always)
        private func home(_ key: UInt64) -> Int {
            // Fibonacci hashing: allocator addresses share low bits, so mix before masking.
            Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask
        }

        /// Inserts or replaces; returns the previous value for `key` if there was one.
        @inline(__always)
        mutating func insert(_ key: UInt64, size: UInt64, slot: Int32) -> (size: UInt64, slot: Int32)? {
            var index = home(key)
            while true {
                let existing = buffer[index].key
                if existing == 0 {
                    buffer[index] = Entry(key: key, size: size, slot: slot)
                    count &+= 1
                    return nil
                }
                if existing == key {
                    let previous = (buffer[index].size, buffer[index].slot)
                    buffer[index].size = size
                    buffer[index].slot = slot
                    return previous
                }
                index = (index &+ 1) & mask
            }
        }

        @inline(__always)
        mutating func remove(_ key: UInt64) -> (size: UInt64, slot: Int32)? {
            var index = home(key)
            while true {
                let existing = buffer[index].key
                if existing == 0 { return nil }
                if existing == key { break }
                index = (index &+ 1) & mask
            }
            let removed = (buffer[index].size, buffer[index].slot)
            // Shift later members of the probe run back so that no gap breaks their lookups.
            var gap = index
            var next = (gap &+ 1) & mask
            while buffer[next].key != 0 {
                let wanted = home(buffer[next].key)
                let distanceFromWanted = (next &- wanted) & mask
                let distanceFromGap = (next &- gap) & mask
                if distanceFromWanted >= distanceFromGap {
                    buffer[gap] = buffer[next]
                    gap = next
                }
                next = (next &+ 1) & mask
            }
            buffer[gap].key = 0
            count &-= 1
            return removed
        }
    }
}
