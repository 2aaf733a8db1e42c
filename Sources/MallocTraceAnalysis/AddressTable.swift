/// The live blocks: address → (requested size, site slot), open addressing with linear probing and
/// backward-shift deletion (no tombstones, so lookups stay short however many blocks come and go).
///
/// A `Dictionary` costs several times more per operation here, and this table is touched by every event.
/// Address 0 is the empty marker; the analyzer never inserts it. Lookups and updates are O(1) expected.
struct AddressTable {
    private var keys: [UInt64]
    private var sizes: [UInt64]
    private var slots: [Int32]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 1 << 12) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: 0, count: size)
        sizes = Array(repeating: 0, count: size)
        slots = Array(repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    private func home(_ key: UInt64) -> Int {
        // Fibonacci hashing: allocator addresses share low bits, so mix before masking.
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask
    }

    /// Inserts or replaces; returns the previous value for `key` if there was one.
    @discardableResult
    mutating func insert(_ key: UInt64, size: UInt64, slot: Int32) -> (size: UInt64, slot: Int32)? {
        if (count + 1) * 2 > keys.count { grow() }
        var index = home(key)
        while true {
            let existing = keys[index]
            if existing == 0 {
                keys[index] = key
                sizes[index] = size
                slots[index] = slot
                count += 1
                return nil
            }
            if existing == key {
                let previous = (sizes[index], slots[index])
                sizes[index] = size
                slots[index] = slot
                return previous
            }
            index = (index + 1) & mask
        }
    }

    mutating func remove(_ key: UInt64) -> (size: UInt64, slot: Int32)? {
        var index = home(key)
        while true {
            let existing = keys[index]
            if existing == 0 { return nil }
            if existing == key { break }
            index = (index + 1) & mask
        }
        let removed = (sizes[index], slots[index])
        // Shift later members of the probe run back so that no gap breaks their lookups.
        var gap = index
        var next = (gap + 1) & mask
        while keys[next] != 0 {
            let wanted = home(keys[next])
            let distanceFromWanted = (next - wanted) & mask
            let distanceFromGap = (next - gap) & mask
            if distanceFromWanted >= distanceFromGap {
                keys[gap] = keys[next]
                sizes[gap] = sizes[next]
                slots[gap] = slots[next]
                gap = next
            }
            next = (next + 1) & mask
        }
        keys[gap] = 0
        count -= 1
        return removed
    }

    private mutating func grow() {
        let oldKeys = keys, oldSizes = sizes, oldSlots = slots
        let size = keys.count * 2
        keys = Array(repeating: 0, count: size)
        sizes = Array(repeating: 0, count: size)
        slots = Array(repeating: 0, count: size)
        mask = size - 1
        count = 0
        for index in oldKeys.indices where oldKeys[index] != 0 {
            insert(oldKeys[index], size: oldSizes[index], slot: oldSlots[index])
        }
    }
}
