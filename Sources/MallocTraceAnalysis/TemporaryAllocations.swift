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

    /// The rings of all threads, flat: thread ring r owns slots r * width ..< (r + 1) * width. Address 0
    /// marks a free slot.
    private let width: Int
    private var slots: [Slot] = []
    private var nextSlot: [Int] = []
    private var ringByThread: [UInt32: Int] = [:]
    /// The thread of each ring, and the ring of recently seen threads by the id's low bits: with many
    /// threads the thread changes every few events, and a dictionary lookup each time cost more than the
    /// ring itself.
    private var ringThreads: [UInt32] = []
    private var recentRing = [Int](repeating: -1, count: 64)
    private var lastThread: UInt32 = 0
    private var lastRing = -1
    /// Address → slot, for the addresses in all rings; kept only once a second thread has a ring. With one
    /// ring, a release can only match that ring, newest slot first, and no table is needed.
    private var slotOfAddress = WindowTable()
    private var usesTable = false
    private var denseCounts: [(count: UInt64, bytes: UInt64)] = []
    private var sparseCounts: [UInt32: (count: UInt64, bytes: UInt64)] = [:]

    /// Stack ids below this are counted in an array, others (damaged traces) in a dictionary.
    private static let denseStackLimit: UInt32 = 1 << 20

    private struct Slot {
        var address: UInt64 = 0
        var size: UInt64 = 0
        var stack: UInt32 = 0
    }

    /// The largest threshold counted exactly: every thread's ring takes threshold + 1 slots (24 bytes each)
    /// at its first allocation, so a threshold of 2^31 asked for 51 GB and `Int.max` overflowed.
    public static let maximumThreshold = 65536

    /// `threshold` is clamped to 0...``maximumThreshold``.
    public init(threshold: Int) {
        self.threshold = min(max(0, threshold), Self.maximumThreshold)
        width = self.threshold + 1
    }

    private mutating func ring(for thread: UInt32) -> Int {
        if thread == lastThread && lastRing >= 0 { return lastRing }
        let index: Int
        let cached = recentRing[Int(thread & 63)]
        if cached >= 0 && ringThreads[cached] == thread {
            index = cached
        } else if let existing = ringByThread[thread] {
            index = existing
        } else {
            index = nextSlot.count
            slots.append(contentsOf: repeatElement(Slot(), count: width))
            nextSlot.append(0)
            ringThreads.append(thread)
            ringByThread[thread] = index
            if index == 1 {
                usesTable = true
                for slot in 0..<width where slots[slot].address != 0 {
                    slotOfAddress.set(slots[slot].address, UInt64(slot))
                }
            }
        }
        recentRing[Int(thread & 63)] = index
        lastThread = thread
        lastRing = index
        return index
    }

    public mutating func consume(_ event: AllocatorEvent) {
        switch event.kind {
        case .control:
            return
        case .allocation:
            guard event.address != 0 else { return }
            let ringIndex = ring(for: event.threadID)
            let position = nextSlot[ringIndex]
            nextSlot[ringIndex] = position + 1 == width ? 0 : position + 1
            let slot = ringIndex * width + position
            if usesTable {
                let evicted = slots[slot].address
                if evicted != 0 { slotOfAddress.remove(evicted, ifValue: UInt64(slot)) }
                slotOfAddress.set(event.address, UInt64(slot))
            }
            slots[slot] = Slot(address: event.address, size: event.size, stack: event.stackID)
        case .release:
            let slot: Int
            if usesTable {
                guard let found = slotOfAddress.remove(event.address) else { return }
                slot = Int(found)
                slots[slot].address = 0
                guard slot / width == ring(for: event.threadID) else { return }  // freed by another thread
            } else {
                guard let found = singleRingSlot(of: event.address) else { return }
                slot = found
                slots[slot].address = 0
                guard ring(for: event.threadID) == 0 else { return }  // a second thread: the ring was its first
            }
            count(stack: slots[slot].stack, size: slots[slot].size)
        case .failedAllocation:
            break
        }
    }

    /// The slot of `address` in the only ring, newest first (an address freed untraced and reused appears
    /// twice; the newer entry is the live block).
    private func singleRingSlot(of address: UInt64) -> Int? {
        guard !nextSlot.isEmpty else { return nil }
        return slots.withUnsafeBufferPointer { Self.newestSlot(of: address, in: $0, before: nextSlot[0]) }
    }

    private static func newestSlot(of address: UInt64, in ring: UnsafeBufferPointer<Slot>, before next: Int) -> Int? {
        var position = next
        for _ in 0..<ring.count {
            position = position == 0 ? ring.count - 1 : position - 1
            if ring[position].address == address { return position }
        }
        return nil
    }

    /// Consumes consecutive events; the same as one ``consume(_:)-(AllocatorEvent)`` each, faster for the
    /// runs of a single-threaded trace (one ring, no address table).
    public mutating func consume(_ events: Span<AllocatorEvent>) {
        var index = 0
        while index < events.count {
            if !usesTable && lastRing == 0 { index = consumeSingleRing(events, from: index) }
            if index < events.count {
                consume(events[index])
                index += 1
            }
        }
    }

    /// The events of ring 0's thread from `start` on, through pointers taken once (each array write would
    /// cost a copy-on-write check); returns the index of the first event left to ``consume(_:)-(AllocatorEvent)``:
    /// another thread's, or a temporary block whose stack id the dense counts cannot hold yet.
    private mutating func consumeSingleRing(_ events: Span<AllocatorEvent>, from start: Int) -> Int {
        var ringSlots: [Slot] = []
        var counts: [(count: UInt64, bytes: UInt64)] = []
        swap(&ringSlots, &slots)
        swap(&counts, &denseCounts)
        var position = nextSlot[0]
        var (total, totalBytes) = (self.total, self.totalBytes)
        defer {
            swap(&ringSlots, &slots)
            swap(&counts, &denseCounts)
            nextSlot[0] = position
            (self.total, self.totalBytes) = (total, totalBytes)
        }
        let thread = lastThread
        let width = self.width
        return ringSlots.withUnsafeMutableBufferPointer { ring in
            counts.withUnsafeMutableBufferPointer { counts in
                for index in start..<events.count {
                    let event = events[index]
                    if event.threadID != thread { return index }
                    switch event.kind {
                    case .allocation:
                        guard event.address != 0 else { continue }
                        ring[position] = Slot(address: event.address, size: event.size, stack: event.stackID)
                        position = position + 1 == width ? 0 : position + 1
                    case .release:
                        guard
                            let slot = Self.newestSlot(
                                of: event.address, in: UnsafeBufferPointer(ring), before: position)
                        else { continue }
                        let stack = Int(ring[slot].stack)
                        if stack >= min(counts.count, Int(Self.denseStackLimit)) { return index }
                        ring[slot].address = 0
                        total &+= 1
                        totalBytes &+= ring[slot].size
                        counts[stack].count &+= 1
                        counts[stack].bytes &+= ring[slot].size
                    case .failedAllocation, .control:
                        continue
                    }
                }
                return events.count
            }
        }
    }

    private mutating func count(stack: UInt32, size: UInt64) {
        total &+= 1
        totalBytes +|= size
        if stack < Self.denseStackLimit {
            let index = Int(stack)
            if index >= denseCounts.count {
                denseCounts.append(
                    contentsOf: repeatElement(
                        (count: UInt64(0), bytes: UInt64(0)),
                        count: max(index + 1, denseCounts.count * 2) - denseCounts.count))
            }
            denseCounts[index].count &+= 1
            denseCounts[index].bytes &+= size
        } else {
            sparseCounts[stack, default: (0, 0)].count &+= 1
            sparseCounts[stack, default: (0, 0)].bytes &+= size
        }
    }

    /// Temporary allocations and their bytes per stack id (stacks with none are absent).
    public var byStack: [UInt32: (count: UInt64, bytes: UInt64)] {
        var result = sparseCounts
        for (index, counts) in denseCounts.enumerated() where counts.count > 0 { result[UInt32(index)] = counts }
        return result
    }
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
