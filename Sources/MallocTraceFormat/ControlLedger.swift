/// Gives the control API's events their meaning, in sequence order, before any analysis sees them, so that
/// every consumer (analysis, filters, exports) handles pool blocks and pauses as plain heap events:
///
/// - While paused (between a pause and a resume in sequence order, whichever threads made the calls), no
///   allocation is delivered, and releases are delivered as non-primary (they keep the live set right without
///   counting as calls). A thread that allocated just after another paused is dropped here too, so the
///   paused interval is exact in sequence order.
/// - A pool block's address becomes a key of its own (``PoolBlocks/keyTag``) and its stack a stack of the reader's
///   whose innermost frame names the pool (defined in ``Catalog/poolStacks``). Destroying a pool releases
///   every block it still holds (non-primary releases of ``AllocationFunction/poolDestroy``).
/// - A backing block (malloctrace_pool_backing) leaves the heap's count when a pool claims it (a
///   non-primary release of ``AllocationFunction/poolBacking``) and its own free is not delivered: its bytes
///   are counted once, as the pool's blocks.
/// - POOL_CREATE and POOL_BACKING themselves are not delivered; marks, snapshots and pauses are.
///
/// Memory: one entry per live pool block and claimed backing block, and per distinct (pool, stack).
struct ControlLedger {
    private var paused = false
    /// Live blocks of each pool: address → key.
    private var poolBlocks: [UInt32: [UInt64: UInt64]] = [:]
    private var nextKey: UInt64 = 0
    private var claimed = Set<UInt64>()
    private var syntheticStacks: [UInt64: UInt32] = [:]
    /// Events that did not fit into the batch that produced them (a destroyed pool's releases).
    private var overflow: [AllocatorEvent] = []
    private var overflowNext = 0

    /// Moves undelivered events to the start of `batch`; returns how many.
    mutating func drain(into batch: UnsafeMutableBufferPointer<AllocatorEvent>) -> Int {
        var count = 0
        while count < batch.count && overflowNext < overflow.count {
            batch[count] = overflow[overflowNext]
            count += 1
            overflowNext += 1
        }
        if overflowNext == overflow.count {
            overflow.removeAll(keepingCapacity: true)
            overflowNext = 0
        }
        return count
    }

    /// Rewrites `batch[start..<end]` in place and returns the new end; events beyond the batch wait for
    /// ``drain(into:)``.
    mutating func rewrite(
        _ batch: UnsafeMutableBufferPointer<AllocatorEvent>, from start: Int, to end: Int, catalog: inout Catalog
    ) -> Int {
        let input = Array(batch[start..<end])
        var count = start
        func emit(_ event: AllocatorEvent) {
            if count < batch.count {
                batch[count] = event
                count += 1
            } else {
                overflow.append(event)
            }
        }
        for var event in input {
            switch event.kind {
            case .allocation, .failedAllocation:
                if paused { continue }
                if event.function == .poolAlloc {
                    event.address = key(pool: event.poolID, address: event.address)
                    event.stackID = syntheticStack(pool: event.poolID, stack: event.stackID, catalog: &catalog)
                }
                emit(event)
            case .release:
                if paused { event.isPrimary = false }
                if event.function == .poolFree {
                    // An unknown block gets a key no block has: an unmatched free, as for the heap.
                    event.address =
                        poolBlocks[event.poolID]?.removeValue(forKey: event.address) ?? PoolBlocks.keyTag | (1 << 61)
                } else if !claimed.isEmpty && claimed.remove(event.address) != nil {
                    continue
                }
                emit(event)
            case .control:
                catalog.noteControl(event)
                switch event.function {
                case .pause:
                    paused = event.size != 0
                    emit(event)
                case .poolCreate:
                    break
                case .poolDestroy:
                    for key in (poolBlocks.removeValue(forKey: event.poolID) ?? [:]).values.sorted() {
                        emit(Self.release(key, like: event, function: .poolDestroy))
                    }
                case .poolBacking:
                    if claimed.insert(event.address).inserted {
                        emit(Self.release(event.address, like: event, function: .poolBacking))
                    }
                default:
                    emit(event)
                }
            }
        }
        return count
    }

    /// The key of the pool's block at `address`: the live one's (an allocation over a live block means its
    /// release went unrecorded, as for the heap), else a new one.
    private mutating func key(pool: UInt32, address: UInt64) -> UInt64 {
        if let live = poolBlocks[pool]?[address] { return live }
        let key = PoolBlocks.keyTag | (nextKey & ((1 << 61) - 1))
        nextKey &+= 1
        poolBlocks[pool, default: [:]][address] = key
        return key
    }

    private static func release(_ address: UInt64, like event: AllocatorEvent, function: AllocationFunction)
        -> AllocatorEvent
    {
        var release = AllocatorEvent(
            kind: .release, function: function, sequence: event.sequence, threadID: event.threadID, time: event.time,
            size: 0, address: address, stackID: 0, isPrimary: false)
        release.poolID = event.poolID
        return release
    }

    /// The reader's stack id for blocks of `pool` allocated from `stack`.
    private mutating func syntheticStack(pool: UInt32, stack: UInt32, catalog: inout Catalog) -> UInt32 {
        let key = UInt64(pool) << 32 | UInt64(stack)
        if let known = syntheticStacks[key] { return known }
        guard syntheticStacks.count < Int(UInt32.max - PoolBlocks.firstSyntheticStack) else { return stack }
        let id = PoolBlocks.firstSyntheticStack + UInt32(syntheticStacks.count)
        syntheticStacks[key] = id
        catalog.poolStacks[id] = (pool, stack)
        return id
    }
}
