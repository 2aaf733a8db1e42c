internal import MallocTraceFormat

/// The live blocks: address → (requested size, site slot), open addressing with linear probing and
/// backward-shift deletion (no tombstones, so lookups stay short however many blocks come and go).
///
/// A `Dictionary` costs several times more per operation here, and this table is touched by every event.
/// Address 0 is the empty marker; the analyzer never inserts it. Lookups and updates are O(1) expected.
///
/// Memory is what limits a pass over a trace with many live blocks, so an entry is 16 bytes (address,
/// and size and slot packed into one word) and the table is kept between half and three quarters full:
/// it grows by half (any capacity works, since a home slot is found by multiplying, not masking), which
/// gives 21–32 bytes per live block. While it grows, the old table and the new one (1.5× as large) are
/// both allocated. A size of 2^40 bytes or more, or a slot of 2^24 − 1 or more, does not fit the packed
/// word: such blocks (seen only in damaged or hostile traces) keep their figures in a side table.
struct AddressTable {
    /// Key and value side by side: a lookup touches one cache line.
    struct Entry {
        var key: UInt64
        /// `size << slotBits | slot`, or ``Entries/overflowMarker`` when the figures are in the side table.
        var value: UInt64
    }

    private var entries: [Entry]
    private var overflow: [UInt64: (size: UInt64, slot: Int32)] = [:]
    private(set) var count = 0

    /// The smallest capacity, and how sparse a new table starts: with few live blocks, probes that stop at
    /// the first entry are worth more than a table that fits in the first-level cache (measured on the
    /// churn benchmark).
    init(capacity: Int = 1 << 12) {
        entries = Array(repeating: Entry(key: 0, value: 0), count: max(16, capacity * 2))
    }

    /// Bytes of entries allocated now (the side table of oversized blocks aside).
    var allocatedBytes: Int { entries.count * MemoryLayout<Entry>.stride }

    /// Makes room for `additional` more blocks, so that that many inserts need no growth.
    mutating func reserve(additional: Int) {
        while (count + additional) * 4 > entries.count * 3 { grow() }
    }

    /// Runs `body` on the entries in place: one copy-on-write check for any number of operations.
    /// `body` may insert at most as many new blocks as were reserved (``reserve(additional:)``).
    mutating func withEntries<Result>(_ body: (inout Entries) -> Result) -> Result {
        var overflow: [UInt64: (size: UInt64, slot: Int32)] = [:]
        swap(&overflow, &self.overflow)
        defer { swap(&overflow, &self.overflow) }
        let (result, newCount) = entries.withUnsafeMutableBufferPointer { buffer in
            var view = Entries(buffer: buffer, count: count, overflow: overflow)
            overflow = [:]
            let result = body(&view)
            swap(&overflow, &view.overflow)
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
        for entry in entries where entry.key != 0 {
            let value = Entries.unpack(entry, overflow: overflow)
            body(entry.key, value.size, value.slot)
        }
    }

    private mutating func grow() {
        let capacity = entries.count + entries.count / 2
        MemoryBudget.reserve(capacity * MemoryLayout<Entry>.stride, for: "the table of \(count) live blocks")
        var old = Array(repeating: Entry(key: 0, value: 0), count: capacity)
        swap(&old, &entries)
        count = 0
        withEntries { table in
            for entry in old where entry.key != 0 { table.place(entry) }
        }
    }

    /// The table's operations on its entries in place (see ``withEntries(_:)``).
    struct Entries {
        fileprivate let buffer: UnsafeMutableBufferPointer<Entry>
        fileprivate(set) var count: Int
        fileprivate var overflow: [UInt64: (size: UInt64, slot: Int32)]

        fileprivate init(
            buffer: UnsafeMutableBufferPointer<Entry>, count: Int, overflow: [UInt64: (size: UInt64, slot: Int32)]
        ) {
            self.buffer = buffer
            self.count = count
            self.overflow = overflow
        }

        static let slotBits: UInt64 = 24
        static let overflowMarker: UInt64 = (1 << slotBits) - 1
        private static let sizeLimit: UInt64 = 1 << (64 - slotBits)

        @inline(__always)
        private static func pack(size: UInt64, slot: Int32) -> UInt64? {
            guard size < sizeLimit, slot >= 0, UInt64(slot) < overflowMarker else { return nil }
            return size << slotBits | UInt64(slot)
        }

        @inline(__always)
        fileprivate static func unpack(_ entry: Entry, overflow: [UInt64: (size: UInt64, slot: Int32)]) -> (
            size: UInt64, slot: Int32
        ) {
            let slot = entry.value & overflowMarker
            if slot == overflowMarker { return overflow[entry.key] ?? (0, 0) }
            return (entry.value >> slotBits, Int32(truncatingIfNeeded: slot))
        }

        @inline(__always)
        private func home(_ key: UInt64) -> Int {
            // Fibonacci hashing (allocator addresses share low bits, so mix first), then the high half of a
            // multiplication by the capacity: an index below it for any capacity. Keys (BlockKey, version 3) are
            // allocation sequence numbers, never reused, where an allocator reuses addresses: spread one by one,
            // every allocation would miss the cache. Eight keys in sequence share a home run instead (two cache
            // lines), spread as a group; grouping more, or all of them, builds probe runs that cost far more.
            guard BlockKey.isKey(key) else {
                let mixed = key &* 0x9E37_79B9_7F4A_7C15
                return Int(truncatingIfNeeded: mixed.multipliedFullWidth(by: UInt64(buffer.count)).high)
            }
            let group = (key >> 3) &* 0x9E37_79B9_7F4A_7C15
            let start = Int(truncatingIfNeeded: group.multipliedFullWidth(by: UInt64(buffer.count)).high)
            let index = start &+ Int(truncatingIfNeeded: key & 7)
            return index >= buffer.count ? index &- buffer.count : index
        }

        @inline(__always)
        private func following(_ index: Int) -> Int {
            let next = index &+ 1
            return next == buffer.count ? 0 : next
        }

        /// The key in `key`'s home entry. Loaded for a batch of events ahead of their inserts and removals,
        /// so that the cache misses of their probes overlap instead of stalling the pass one by one.
        /// (Loading the events' sites as well was measured too: no faster.)
        @inline(__always)
        func keyAtHome(of key: UInt64) -> UInt64 { buffer[home(key)].key }

        /// Puts an entry known to be absent into the first free place of its probe run (growth).
        fileprivate mutating func place(_ entry: Entry) {
            var index = home(entry.key)
            while buffer[index].key != 0 { index = following(index) }
            buffer[index] = entry
            count &+= 1
        }

        /// Inserts or replaces; returns the previous value for `key` if there was one.
        @inline(__always)
        mutating func insert(_ key: UInt64, size: UInt64, slot: Int32) -> (size: UInt64, slot: Int32)? {
            var index = home(key)
            let value: UInt64
            if let packed = Self.pack(size: size, slot: slot) {
                value = packed
            } else {
                value = Self.overflowMarker
            }
            while true {
                let existing = buffer[index].key
                if existing == 0 {
                    buffer[index] = Entry(key: key, value: value)
                    if value == Self.overflowMarker { overflow[key] = (size, slot) }
                    count &+= 1
                    return nil
                }
                if existing == key {
                    let previous = takeValue(at: index)
                    buffer[index].value = value
                    if value == Self.overflowMarker { overflow[key] = (size, slot) }
                    return previous
                }
                index = following(index)
            }
        }

        /// The figures of the entry at `index`, taken out of the side table if they are there.
        @inline(__always)
        private mutating func takeValue(at index: Int) -> (size: UInt64, slot: Int32) {
            let entry = buffer[index]
            if entry.value & Self.overflowMarker == Self.overflowMarker {
                return overflow.removeValue(forKey: entry.key) ?? (0, 0)
            }
            return (entry.value >> Self.slotBits, Int32(truncatingIfNeeded: entry.value & Self.overflowMarker))
        }

        @inline(__always)
        mutating func remove(_ key: UInt64) -> (size: UInt64, slot: Int32)? {
            var index = home(key)
            while true {
                let existing = buffer[index].key
                if existing == 0 { return nil }
                if existing == key { break }
                index = following(index)
            }
            let removed = takeValue(at: index)
            // Shift later members of the probe run back so that no gap breaks their lookups.
            let capacity = buffer.count
            var gap = index
            var next = following(gap)
            while buffer[next].key != 0 {
                let wanted = home(buffer[next].key)
                let distanceFromWanted = next >= wanted ? next &- wanted : next &+ capacity &- wanted
                let distanceFromGap = next >= gap ? next &- gap : next &+ capacity &- gap
                if distanceFromWanted >= distanceFromGap {
                    buffer[gap] = buffer[next]
                    gap = next
                }
                next = following(next)
            }
            buffer[gap].key = 0
            count &-= 1
            return removed
        }
    }
}
