public import MallocTraceFormat

/// Counts temporary allocations with memray's rule: a block is temporary when the thread that allocated
/// it frees it with at most `threshold` other allocations of that thread in between. Threshold 0 is
/// heaptrack's "freed immediately": the next heap call of the thread after the allocation is its free.
///
/// A release by `realloc` counts as a free (a `malloc` followed at once by a `realloc` of the block made a
/// temporary block). Each thread keeps a ring of its last `threshold + 1` allocations; a small table maps
/// the addresses in all rings to their ring slot, so every event costs O(1) and memory is bounded by
/// threads × (threshold + 1), not by the number of events.
public struct TemporaryAllocationCounter {
    public let threshold: Int
    /// Temporary allocations, all stacks together.
    public private(set) var total: UInt64 = 0
    public private(set) var totalBytes: UInt64 = 0

    private struct Ring {
        var addresses: [UInt64]
        var sizes: [UInt64]
        var stacks: [UInt32]
        var next = 0
    }

    private var rings: [Ring] = []
    private var ringByThread: [UInt32: Int] = [:]
    private var lastThread: UInt32 = 0
    private var lastRing = -1
    /// Address → ring * (threshold + 1) + position, for addresses currently in some ring.
    private var ringSlots = WindowTable()
    private var countsByStack: [UInt32: (count: UInt64, bytes: UInt64)] = [:]

    public init(threshold: Int) {
        self.threshold = max(0, threshold)
    }

    private mutating func ring(for thread: UInt32) -> Int {
        if thread == lastThread && lastRing >= 0 { return lastRing }
        let index: Int
        if let existing = ringByThread[thread] {
            index = existing
        } else {
            index = rings.count
            let width = threshold + 1
            rings.append(
                Ring(
                    addresses: Array(repeating: 0, count: width), sizes: Array(repeating: 0, count: width),
                    stacks: Array(repeating: 0, count: width)))
            ringByThread[thread] = index
        }
        lastThread = thread
        lastRing = index
        return index
    }

    public mutating func consume(_ event: AllocatorEvent) {
        switch event.kind {
        case .allocation:
            guard event.address != 0 else { return }
            let ringIndex = ring(for: event.threadID)
            let width = threshold + 1
            let position = rings[ringIndex].next
            let location = UInt64(ringIndex * width + position)
            let evicted = rings[ringIndex].addresses[position]
            if evicted != 0 { ringSlots.remove(evicted, ifValue: location) }
            rings[ringIndex].addresses[position] = event.address
            rings[ringIndex].sizes[position] = event.size
            rings[ringIndex].stacks[position] = event.stackID
            rings[ringIndex].next = position + 1 == width ? 0 : position + 1
            ringSlots.set(event.address, location)
        case .release:
            guard let location = ringSlots.remove(event.address) else { return }
            let width = threshold + 1
            let ringIndex = Int(location) / width, position = Int(location) % width
            rings[ringIndex].addresses[position] = 0
            guard ringIndex == ring(for: event.threadID) else { return }  // freed by another thread
            let stack = rings[ringIndex].stacks[position], size = rings[ringIndex].sizes[position]
            total &+= 1
            totalBytes &+= size
            countsByStack[stack, default: (0, 0)].count &+= 1
            countsByStack[stack, default: (0, 0)].bytes &+= size
        case .failedAllocation:
            break
        }
    }

    /// Temporary allocations and their bytes per stack id (stacks with none are absent).
    public var byStack: [UInt32: (count: UInt64, bytes: UInt64)] { countsByStack }
}

/// Address → small value, open addressing with backward-shift deletion; sized for the few entries of the
/// temporary-allocation windows. Address 0 marks an empty slot.
struct WindowTable {
    private var keys = [UInt64](repeating: 0, count: 16)
    private var values = [UInt64](repeating: 0, count: 16)
    private var count = 0

    private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 24) & (keys.count - 1)
    }

    mutating func set(_ key: UInt64, _ value: UInt64) {
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var index = home(key)
        while keys[index] != 0 && keys[index] != key { index = (index + 1) & mask }
        if keys[index] == 0 { count += 1 }
        keys[index] = key
        values[index] = value
    }

    /// Removes `key` only if it maps to `value` (a ring slot being overwritten no longer owns a key that a
    /// newer slot took over).
    mutating func remove(_ key: UInt64, ifValue value: UInt64) {
        guard let index = find(key), values[index] == value else { return }
        delete(at: index)
    }

    @discardableResult
    mutating func remove(_ key: UInt64) -> UInt64? {
        guard let index = find(key) else { return nil }
        let value = values[index]
        delete(at: index)
        return value
    }

    private func find(_ key: UInt64) -> Int? {
        let mask = keys.count - 1
        var index = home(key)
        while keys[index] != 0 {
            if keys[index] == key { return index }
            index = (index + 1) & mask
        }
        return nil
    }

    private mutating func delete(at index: Int) {
        let mask = keys.count - 1
        var gap = index
        var next = (gap + 1) & mask
        while keys[next] != 0 {
            let wanted = home(keys[next])
            if (next - wanted) & mask >= (next - gap) & mask {
                keys[gap] = keys[next]
                values[gap] = values[next]
                gap = next
            }
            next = (next + 1) & mask
        }
        keys[gap] = 0
        count -= 1
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        keys = Array(repeating: 0, count: oldKeys.count * 2)
        values = Array(repeating: 0, count: oldKeys.count * 2)
        count = 0
        for index in oldKeys.indices where oldKeys[index] != 0 { set(oldKeys[index], oldValues[index]) }
    }
}
