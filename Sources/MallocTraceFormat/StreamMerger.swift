/// Merges the thread streams into one order by sequence number (a k-way merge).
///
/// Each stream decodes up to ``lookahead`` events ahead into its own buffer, so decoding runs in long
/// stretches however finely the threads interleave (on a multi-core machine, a thread's run in the
/// global order is often a single event). A binary min-heap orders the streams by the sequence number
/// of their next buffered event. Merging takes a whole run at a time: while the top stream's next event
/// still comes before every other stream's (the *bound*), taking it costs one comparison and a copy.
/// When one stream is left, it decodes straight into the batch.
///
/// Memory: ``lookahead`` events per thread, whatever the length of the trace. A merger owns its buffers:
/// it is used from one place at a time and not copied.
struct StreamMerger {
    static let lookahead = 64

    /// Where a stream's undelivered lookahead events are: `next ..< end` within its part of `buffered`.
    private struct Pending {
        var next = 0
        var end = 0
    }

    private struct HeapEntry {
        /// Of the stream's next event, kept here so that comparisons need no second lookup.
        var sequence: UInt64
        var stream: Int
    }

    /// Fixed-size buffers, allocated once: the merge loop works on them through plain pointers, with no
    /// copy-on-write check per event.
    private final class Storage {
        /// Stream `s` owns `buffered[s * lookahead ..< (s + 1) * lookahead]`.
        let buffered: UnsafeMutableBufferPointer<AllocatorEvent>
        let pending: UnsafeMutableBufferPointer<Pending>
        /// Room for every stream; the heap is its first `heapCount` entries.
        let heap: UnsafeMutableBufferPointer<HeapEntry>

        init(streamCount: Int) {
            buffered = .allocate(capacity: streamCount * StreamMerger.lookahead)
            buffered.initialize(repeating: StreamMerger.placeholder)
            pending = .allocate(capacity: streamCount)
            pending.initialize(repeating: Pending())
            heap = .allocate(capacity: streamCount)
            heap.initialize(repeating: HeapEntry(sequence: 0, stream: 0))
        }

        deinit {
            buffered.deallocate()
            pending.deallocate()
            heap.deallocate()
        }
    }

    private var streams: [ThreadStream]
    private let storage: Storage
    private var heapCount = 0
    private var ledger = ControlLedger()

    /// A value for event storage that is about to be overwritten.
    static let placeholder = AllocatorEvent(
        kind: .release, function: .free, sequence: 0, threadID: 0, time: 0, size: 0, address: 0, stackID: 0)

    init(streams: [ThreadStream], catalog: inout Catalog) {
        self.streams = streams
        storage = Storage(streamCount: streams.count)
        for stream in streams.indices where refill(stream, catalog: &catalog) {
            push(stream)
        }
    }

    /// Writes the next events in sequence order to the start of `batch` and returns how many it wrote;
    /// fewer than `batch.count` only when every stream has ended.
    mutating func fill(_ batch: UnsafeMutableBufferPointer<AllocatorEvent>, catalog: inout Catalog) -> Int {
        while true {
            var count = ledger.drain(into: batch)
            if count == batch.count { return count }
            let merged = fillMerged(UnsafeMutableBufferPointer(rebasing: batch[count...]), catalog: &catalog)
            catalog.sampling?.scale(UnsafeMutableBufferPointer(rebasing: batch[count..<count + merged]))
            if catalog.hasControlEvents {
                count = ledger.rewrite(batch, from: count, to: count + merged, catalog: &catalog)
            } else {
                count += merged
            }
            // The ledger may drop a whole batch (all of it paused): 0 must mean the end.
            if count > 0 || merged == 0 { return count }
        }
    }

    private mutating func fillMerged(_ batch: UnsafeMutableBufferPointer<AllocatorEvent>, catalog: inout Catalog) -> Int
    {
        let buffered = storage.buffered
        let pending = storage.pending
        let heap = storage.heap
        var count = 0
        while count < batch.count && heapCount > 0 {
            let top = heap[0].stream
            let base = top * Self.lookahead
            var next = pending[top].next
            let end = pending[top].end
            if heapCount == 1 && next == end {
                // The last stream, with nothing buffered: no merging left to do.
                if !streams[top].decode(into: batch, count: &count, catalog: &catalog) { heapCount = 0 }
                continue
            }
            // Every other stream's next event comes after `bound`: the top's children hold the candidates.
            var bound = UInt64.max
            if heapCount > 1 { bound = heap[1].sequence }
            if heapCount > 2 { bound = min(bound, heap[2].sequence) }
            repeat {
                batch[count] = buffered[base + next]
                count += 1
                next += 1
            } while next < end && count < batch.count && buffered[base + next].sequence <= bound
            pending[top].next = next
            if next < end {
                heap[0].sequence = buffered[base + next].sequence
            } else if heapCount == 1 {
                continue  // left drained: the last stream decodes straight into the batch
            } else if refill(top, catalog: &catalog) {
                heap[0].sequence = buffered[base].sequence
            } else {
                heapCount -= 1
                heap[0] = heap[heapCount]
            }
            siftDown()
        }
        return count
    }

    /// Decodes the stream's next events into its (drained) lookahead; false if it has none left.
    private mutating func refill(_ stream: Int, catalog: inout Catalog) -> Bool {
        let base = stream * Self.lookahead
        let slice = UnsafeMutableBufferPointer(rebasing: storage.buffered[base..<base + Self.lookahead])
        var count = 0
        _ = streams[stream].decode(into: slice, count: &count, catalog: &catalog)
        storage.pending[stream] = Pending(next: 0, end: count)
        return count > 0
    }

    private mutating func push(_ stream: Int) {
        let heap = storage.heap
        let entry = HeapEntry(sequence: storage.buffered[stream * Self.lookahead].sequence, stream: stream)
        var child = heapCount
        heapCount += 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent].sequence <= entry.sequence { break }
            heap[child] = heap[parent]
            child = parent
        }
        heap[child] = entry
    }

    /// Moves the top entry down to its place: the hole goes down and the entry is written once.
    @inline(__always)
    private func siftDown() {
        let heap = storage.heap
        guard heapCount > 0 else { return }
        let moving = heap[0]
        var hole = 0
        while true {
            var child = 2 * hole + 1
            if child >= heapCount { break }
            if child + 1 < heapCount && heap[child + 1].sequence < heap[child].sequence { child += 1 }
            if moving.sequence <= heap[child].sequence { break }
            heap[hole] = heap[child]
            hole = child
        }
        heap[hole] = moving
    }
}
