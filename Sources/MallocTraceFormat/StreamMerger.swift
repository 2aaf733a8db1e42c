/// Merges the thread streams into one order by sequence number (a k-way merge).
///
/// Each stream's next event (its *head*) waits in `heads`, and a binary min-heap orders the streams by
/// head sequence. The heap is consulted only when a stream's run ends: threads run for whole time
/// slices, so one thread's events usually follow each other in runs of the global order, and while the
/// current stream's next event still comes before every other stream's head (the *bound*), taking it
/// costs a single comparison. With one thread the bound is never reached and merging is a plain copy.
struct StreamMerger {
    private var streams: [ThreadStream]
    private var heads: [AllocatorEvent]
    /// The streams that still have a head, as a binary min-heap on the head's sequence number (kept here
    /// too, so that comparisons need no second lookup).
    private var heap: [(sequence: UInt64, stream: Int)] = []

    /// A value for event storage that is about to be overwritten.
    static let placeholder = AllocatorEvent(
        kind: .release, function: .free, sequence: 0, threadID: 0, time: 0, size: 0, address: 0, stackID: 0)

    init(streams: [ThreadStream], catalog: inout Catalog) {
        self.streams = streams
        heads = Array(repeating: Self.placeholder, count: streams.count)
        for index in self.streams.indices where self.streams[index].next(into: &heads[index], catalog: &catalog) {
            push(index)
        }
    }

    /// Writes the next events in sequence order to the start of `batch` and returns how many it wrote;
    /// fewer than `batch.count` only when every stream has ended.
    mutating func fill(_ batch: UnsafeMutableBufferPointer<AllocatorEvent>, catalog: inout Catalog) -> Int {
        var count = 0
        while count < batch.count, let top = heap.first?.stream {
            let bound = smallestOtherHead()
            batch[count] = heads[top]
            count += 1
            // The run: the stream's next events go straight into the batch while they come before every
            // other stream's head. The stream is decoded in place: runs can be short, and copying it out
            // and back would cost more than the run.
            var hasHead = true
            switch streams[top].decode(into: batch, count: &count, bound: bound, catalog: &catalog) {
            case .passedBound:
                heads[top] = batch[count]  // not delivered yet: it waits as the stream's head
            case .batchFull:
                var head = Self.placeholder
                hasHead = streams[top].next(into: &head, catalog: &catalog)
                heads[top] = head
            case .streamEnded:
                hasHead = false
            }
            if hasHead {
                heap[0].sequence = heads[top].sequence
            } else {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            siftDown(from: 0)
        }
        return count
    }

    /// The lowest head sequence among the streams other than the heap's top: one of its two children.
    private func smallestOtherHead() -> UInt64 {
        var bound = UInt64.max
        if heap.count > 1 { bound = heap[1].sequence }
        if heap.count > 2 { bound = min(bound, heap[2].sequence) }
        return bound
    }

    private mutating func push(_ stream: Int) {
        heap.append((heads[stream].sequence, stream))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent].sequence <= heap[child].sequence { break }
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
            if left + 1 < heap.count && heap[left + 1].sequence < heap[left].sequence { smallest = left + 1 }
            if heap[parent].sequence <= heap[smallest].sequence { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
