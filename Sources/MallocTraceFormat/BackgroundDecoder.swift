import Dispatch
import Synchronization

/// Decodes and merges events on a second thread while the calling thread consumes earlier batches.
///
/// Decoding and analysis take about half of a report's time each, so on two cores they overlap. The two
/// threads share a ring of `slotCount` batches: the decoder fills a free slot and passes it on, the
/// consumer hands it back when `body` returns. The decoder never runs more than `slotCount` batches
/// ahead, so memory stays bounded.
///
/// `@unchecked Sendable`: `merger` and `catalog` belong to the decoding thread until `done` is signalled;
/// a slot belongs to one thread at a time and changes hands only through the `filled` and `free`
/// semaphores, which also order the memory accesses.
final class BackgroundDecoder: @unchecked Sendable {
    /// 8 slots of 2048 events (900 KiB) measured best on the benchmarks: larger slots mean fewer
    /// hand-overs between the threads, but a smaller ring stays closer in the caches of both CPUs.
    static let slotCount = 8
    static let slotCapacity = 2048

    private let storage: UnsafeMutableBufferPointer<AllocatorEvent>
    private let counts: UnsafeMutableBufferPointer<Int>
    private let filled = DispatchSemaphore(value: 0)
    /// Created at 0 and signalled once per slot: libdispatch traps when a semaphore is destroyed with a
    /// value below the one it was created with.
    private let free = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let isCancelled = Atomic<Bool>(false)
    private var merger: StreamMerger
    private var catalog: Catalog

    init(merger: StreamMerger, catalog: Catalog) {
        self.merger = merger
        self.catalog = catalog
        storage = .allocate(capacity: Self.slotCount * Self.slotCapacity)
        storage.initialize(repeating: StreamMerger.placeholder)
        counts = .allocate(capacity: Self.slotCount)
        counts.initialize(repeating: 0)
    }

    deinit {
        storage.deallocate()
        counts.deallocate()
    }

    private func slot(_ index: Int) -> UnsafeMutableBufferPointer<AllocatorEvent> {
        UnsafeMutableBufferPointer(rebasing: storage[index * Self.slotCapacity..<(index + 1) * Self.slotCapacity])
    }

    /// Decodes every event, calling `body` with each batch on the calling thread, and returns the
    /// catalog of side events. If `body` throws, decoding stops and the error is rethrown.
    func run<Failure: Error>(
        _ body: (Span<AllocatorEvent>) throws(Failure) -> Void
    ) throws(Failure) -> Catalog {
        for _ in 0..<Self.slotCount { free.signal() }
        DispatchQueue.global(qos: .userInitiated).async { self.decode() }
        var index = 0
        while true {
            filled.wait()
            let count = counts[index]
            if count == 0 { break }
            do throws(Failure) {
                try body(UnsafeBufferPointer(rebasing: slot(index)[..<count]).span)
            } catch {
                isCancelled.store(true, ordering: .relaxed)
                free.signal()  // the decoder may be waiting for a slot: let it see the cancellation
                done.wait()
                throw error
            }
            free.signal()
            index = (index + 1) % Self.slotCount
        }
        done.wait()
        return catalog
    }

    /// The decoding thread: fills slots in ring order; a slot with 0 events marks the end.
    private func decode() {
        var index = 0
        while true {
            free.wait()
            if isCancelled.load(ordering: .relaxed) { break }
            let count = merger.fill(slot(index), catalog: &catalog)
            counts[index] = count
            filled.signal()
            if count == 0 { break }
            index = (index + 1) % Self.slotCount
        }
        done.signal()
    }
}
