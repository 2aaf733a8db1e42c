/// The events of one thread, decoded chunk after chunk in file order (which is that thread's order).
struct ThreadStream {
    let threadID: UInt32
    private var chunks: ArraySlice<TraceReader.ChunkLocation>
    private var decoder: ChunkDecoder?
    private let bytes: UnsafeRawBufferPointer
    private var time: UInt64 = 0
    /// The second half of a realloc, due after its release half.
    private var pending: AllocatorEvent?

    static func streams(for chunks: [TraceReader.ChunkLocation], bytes: UnsafeRawBufferPointer) -> [ThreadStream] {
        var order: [UInt32] = []
        var byThread: [UInt32: [TraceReader.ChunkLocation]] = [:]
        for chunk in chunks {
            if byThread[chunk.threadID] == nil { order.append(chunk.threadID) }
            byThread[chunk.threadID, default: []].append(chunk)
        }
        return order.map { ThreadStream(threadID: $0, chunks: byThread[$0, default: []][...], bytes: bytes) }
    }

    private init(threadID: UInt32, chunks: ArraySlice<TraceReader.ChunkLocation>, bytes: UnsafeRawBufferPointer) {
        self.threadID = threadID
        self.chunks = chunks
        self.bytes = bytes
    }

    /// The next heap event of this thread; side events (stacks, modules, time) are absorbed on the way.
    mutating func next(catalog: inout Catalog) -> AllocatorEvent? {
        if let event = pending {
            pending = nil
            return event
        }
        while true {
            if decoder == nil {
                guard let chunk = chunks.popFirst() else { return nil }
                decoder = ChunkDecoder(bytes: bytes, start: chunk.start, end: chunk.end)
                time = 0
            }
            do {
                guard let raw = try decoder?.next() else {
                    decoder = nil
                    continue
                }
                if let event = absorb(raw, catalog: &catalog) { return event }
            } catch {
                catalog.diagnostics.append(
                    TraceDiagnostic(offset: error.offset, message: error.reason + "; rest of this chunk skipped"))
                decoder = nil
            }
        }
    }

    private mutating func absorb(_ raw: ChunkEvent, catalog: inout Catalog) -> AllocatorEvent? {
        switch raw {
        case .allocation(let function, let sequence, let size, let address, let stack, let alignment):
            return AllocatorEvent(
                kind: address == 0 ? .failedAllocation : .allocation, function: function, sequence: sequence,
                threadID: threadID, time: time, size: size, address: address, stackID: stack, alignment: alignment)
        case .reallocation(let function, let before, let after, let size, let old, let new, let stack):
            return splitReallocation(
                function, before: before, after: after, size: size, old: old, new: new, stack: stack)
        case .free(let sequence, let address):
            return AllocatorEvent(
                kind: .release, function: .free, sequence: sequence, threadID: threadID, time: time, size: 0,
                address: address, stackID: 0)
        case .stack(let id, let frames):
            catalog.stacks[id] = frames
            catalog.onStack?(id, frames, catalog.modules)
        case .time(let value):
            time = value
        case .module(let module):
            catalog.add(module)
        case .moduleUnload(let id):
            catalog.unload(id)
        case .skipped:
            break
        }
        return nil
    }

    /// glibc's realloc: a NULL result with size 0 freed the old block; with size > 0 it failed and the old
    /// block is intact. Otherwise the old block (if any) is released first and the new one exists after.
    private mutating func splitReallocation(
        _ function: AllocationFunction, before: UInt64, after: UInt64, size: UInt64, old: UInt64, new: UInt64,
        stack: UInt32
    ) -> AllocatorEvent? {
        let releasesOld = old != 0 && (new != 0 || size == 0)
        let release = AllocatorEvent(
            kind: .release, function: function, sequence: before, threadID: threadID, time: time, size: 0,
            address: old, stackID: stack, isPrimary: new == 0 && size == 0)
        if new == 0 && size == 0 && old != 0 { return release }
        let result = AllocatorEvent(
            kind: new == 0 ? .failedAllocation : .allocation, function: function, sequence: after,
            threadID: threadID, time: time, size: size, address: new, stackID: stack)
        guard releasesOld else { return result }
        pending = result
        return release
    }
}

/// Merges thread streams by sequence number with a binary heap keyed on each stream's next event.
struct StreamMerger {
    private var heads: [AllocatorEvent?]
    private var heap: [Int] = []

    init(streams: inout [ThreadStream], catalog: inout Catalog) {
        heads = []
        heads.reserveCapacity(streams.count)
        for index in streams.indices {
            heads.append(streams[index].next(catalog: &catalog))
            if heads[index] != nil { push(index) }
        }
    }

    private func key(_ stream: Int) -> UInt64 { heads[stream]?.sequence ?? UInt64.max }

    private mutating func push(_ stream: Int) {
        heap.append(stream)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if key(heap[parent]) <= key(heap[child]) { break }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            if left >= heap.count { return }
            var smallest = left
            if left + 1 < heap.count && key(heap[left + 1]) < key(heap[left]) { smallest = left + 1 }
            if key(heap[parent]) <= key(heap[smallest]) { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }

    mutating func next(streams: inout [ThreadStream], catalog: inout Catalog) -> AllocatorEvent? {
        guard let top = heap.first, let event = heads[top] else { return nil }
        heads[top] = streams[top].next(catalog: &catalog)
        if heads[top] == nil {
            heap[0] = heap[heap.count - 1]
            heap.removeLast()
        }
        if !heap.isEmpty { siftDown(from: 0) }
        return event
    }
}
