import MallocTraceFormat
import Testing

@testable import MallocTraceAnalysis

@Suite struct TemporaryAllocationCounterTests {
    /// Counts event by event, and again in batches of every size from 1 to 9 (the batch path has a fast
    /// loop for one thread); every way must agree.
    private func count(_ script: Script, threshold: Int) -> TemporaryAllocationCounter {
        var counter = TemporaryAllocationCounter(threshold: threshold)
        for event in script.events { counter.consume(event) }
        for batchSize in 1...9 {
            var batched = TemporaryAllocationCounter(threshold: threshold)
            inBatches(script.events, of: batchSize) { batched.consume($0) }
            #expect(batched.total == counter.total, "batches of \(batchSize)")
            #expect(batched.totalBytes == counter.totalBytes, "batches of \(batchSize)")
            let batchedByStack: [UInt32: [UInt64]] = batched.byStack.mapValues { [$0.count, $0.bytes] }
            let expectedByStack: [UInt32: [UInt64]] = counter.byStack.mapValues { [$0.count, $0.bytes] }
            #expect(batchedByStack == expectedByStack, "batches of \(batchSize)")
        }
        return counter
    }

    /// Found by tools/fuzz/fuzz-cli.py (`report --temporary-threshold 2147483648`): the rings are allocated
    /// at threshold + 1 slots per thread, so a huge threshold asked for 51 GB, and `Int.max` overflowed.
    @Test func aHugeThresholdIsClampedNotAllocated() {
        for threshold in [Int.max, 1 << 31, TemporaryAllocationCounter.maximumThreshold + 1] {
            var script = Script()
            script.malloc(8, at: 0x1000, stack: 1, thread: 3)
            script.malloc(8, at: 0x2000, stack: 1, thread: 4)
            script.free(0x1000, thread: 3)
            let counter = count(script, threshold: threshold)
            #expect(counter.threshold == TemporaryAllocationCounter.maximumThreshold)
            #expect(counter.total == 1)
        }
    }

    /// Thread ids 3 and 67 share the low bits the recent-thread cache is indexed by: each must keep its
    /// own ring. Each thread allocates, the other thread allocates, then the first frees: with threshold 0
    /// that is temporary (the other thread's allocation does not count), so all 200 are.
    @Test func threadsWhoseIdsCollideInTheCacheKeepTheirOwnRings() {
        var script = Script()
        for round in UInt64(0)..<100 {
            let base = 0x10000 + round * 0x100
            script.malloc(8, at: base, stack: 1, thread: 3)
            script.malloc(8, at: base + 0x10, stack: 2, thread: 67)
            script.free(base, thread: 3)
            script.free(base + 0x10, thread: 67)
        }
        let counter = count(script, threshold: 0)
        #expect(counter.total == 200)
        #expect(counter.byStack[1]?.count == 100)
        #expect(counter.byStack[2]?.count == 100)
    }

    @Test func aSingleThreadsBatchesMatchItsEvents() {
        var script = Script()
        var random = LinearCongruential(seed: 11)
        var live: [UInt64] = []
        var next: UInt64 = 0x1000
        for _ in 0..<4000 {
            if live.isEmpty || random.next() % 2 == 0 {
                script.malloc(random.next() % 100, at: next, stack: UInt32(random.next() % 40))
                live.append(next)
                next += 0x10
            } else {
                script.free(live.remove(at: Int(random.next() % UInt64(min(live.count, 3))) + max(0, live.count - 3)))
            }
        }
        for threshold in [0, 1, 5] {
            #expect(count(script, threshold: threshold).total > 0)
        }
    }

    @Test func thresholdCountsOtherAllocationsOfTheSameThread() {
        var script = Script()
        for round in UInt64(0)..<10 {
            let base = 0x1000 + round * 0x100
            script.malloc(10, at: base, stack: 1)
            script.malloc(20, at: base + 0x10, stack: 2)
            script.malloc(30, at: base + 0x20, stack: 3)
            script.free(base)
            script.free(base + 0x10)
            script.free(base + 0x20)
        }
        // Frees in between do not count: c, the last allocation, is temporary even with threshold 0.
        let none = count(script, threshold: 0)
        #expect(none.total == 10)
        #expect(none.byStack[3]?.count == 10)
        #expect(none.byStack[1] == nil)
        #expect(count(script, threshold: 1).total == 20)
        #expect(count(script, threshold: 2).total == 30)
        #expect(count(script, threshold: 2).totalBytes == 600)
    }

    @Test func onlyTheAllocatingThreadCounts() {
        var script = Script()
        script.malloc(8, at: 0x10, stack: 1, thread: 1)
        script.malloc(8, at: 0x20, stack: 2, thread: 2)  // another thread: does not break thread 1's window
        script.free(0x10, thread: 1)  // temporary for thread 1 with threshold 0
        script.malloc(8, at: 0x30, stack: 3, thread: 1)
        script.free(0x30, thread: 2)  // freed by another thread: never temporary
        script.free(0x20, thread: 2)  // thread 2's block, freed by it right away... after thread 1's events
        let counter = count(script, threshold: 0)
        #expect(counter.byStack[1]?.count == 1)
        #expect(counter.byStack[3] == nil)
        #expect(counter.byStack[2]?.count == 1)
        #expect(counter.total == 2)
    }

    @Test func aReusedAddressIsNotMistakenForItsPredecessor() {
        var script = Script()
        script.malloc(8, at: 0x10, stack: 1, thread: 1)
        script.free(0x10, thread: 2)  // thread 2 frees thread 1's block: not temporary
        script.malloc(8, at: 0x10, stack: 2, thread: 3)  // the address comes back on thread 3
        script.free(0x10, thread: 1)  // thread 1 frees it: not its own block
        let counter = count(script, threshold: 4)
        #expect(counter.total == 0)
    }

    @Test func manyThreadsAndBlocksStayConsistent() {
        var script = Script()
        var random = LinearCongruential(seed: 3)
        var live: [(UInt64, UInt32)] = []
        var next: UInt64 = 0x1000
        for _ in 0..<5000 {
            if live.isEmpty || random.next() % 2 == 0 {
                let thread = UInt32(random.next() % 8)
                script.malloc(16, at: next, stack: thread, thread: thread)
                live.append((next, thread))
                next += 0x10
            } else {
                let index = Int(random.next() % UInt64(live.count))
                let (address, thread) = live.remove(at: index)
                script.free(address, thread: random.next() % 4 == 0 ? thread + 1 : thread)
            }
        }
        let counter = count(script, threshold: 3)
        #expect(counter.total == counter.byStack.values.map(\.count).reduce(0, +))
        #expect(counter.total <= 5000)
    }
}

@Suite struct SizeHistogramTests {
    @Test func powerOfTwoBuckets() {
        var histogram = SizeHistogram()
        var script = Script()
        for (index, size) in [0, 1, 2, 3, 4, 7, 8, 1023, 1024, UInt64.max].enumerated() {
            script.malloc(size, at: UInt64(index + 1) * 0x10, stack: 1)
        }
        for event in script.events { histogram.consume(event) }
        var batched = SizeHistogram()
        inBatches(script.events, of: 3) { batched.consume($0) }
        #expect(batched == histogram)
        let buckets = histogram.buckets
        #expect(buckets.map(\.minimumSize) == [0, 1, 2, 4, 8, 512, 1024, 1 << 63])
        #expect(buckets.map(\.maximumSize) == [0, 1, 3, 7, 15, 1023, 2047, UInt64.max])
        #expect(buckets.map(\.allocationCalls) == [1, 1, 2, 2, 1, 1, 1, 1])
        #expect(buckets[2].bytes == 5)
    }
}

@Suite struct EventFilterTests {
    private func analyze(_ script: Script, _ filter: EventFilter) -> HeapAnalysis {
        var filter = filter
        var analyzer = HeapAnalyzer()
        for event in script.events where filter.accept(event) { analyzer.consume(event) }
        return analyzer.result()
    }

    @Test func unselectedBlocksAndTheirFreesDisappear() {
        var script = Script()
        script.malloc(100, at: 0x10, stack: 1)
        script.malloc(200, at: 0x20, stack: 2)
        script.free(0x10)
        script.free(0x20)
        script.malloc(50, at: 0x10, stack: 2)  // address reused by a selected stack
        let analysis = analyze(script, EventFilter(acceptsStack: { $0 == 2 }))
        #expect(analysis.summary.allocationCalls == 2)
        #expect(analysis.summary.freeCalls == 1)
        #expect(analysis.summary.unmatchedFrees == 0)
        #expect(analysis.summary.peakBytes == 200)
        #expect(analysis.summary.leakedBytes == 50)
    }

    @Test func timeWindowEndsWithLiveBlocks() {
        var script = Script()
        script.time = 1
        script.malloc(100, at: 0x10, stack: 1)  // before the window
        script.time = 5
        script.malloc(200, at: 0x20, stack: 1)
        script.free(0x10)  // releases a block from before the window: dropped
        script.time = 20
        script.free(0x20)  // after the window: the block is still live at its end
        let analysis = analyze(script, EventFilter(timeRange: 2...10))
        #expect(analysis.summary.allocationCalls == 1)
        #expect(analysis.summary.freeCalls == 0)
        #expect(analysis.summary.unmatchedFrees == 0)
        #expect(analysis.summary.leakedBytes == 200)
    }

    @Test func threadsSelectAllocationsNotFrees() {
        var script = Script()
        script.malloc(100, at: 0x10, stack: 1, thread: 7)
        script.malloc(300, at: 0x30, stack: 1, thread: 8)
        script.free(0x10, thread: 8)
        script.free(0x30, thread: 8)
        let analysis = analyze(script, EventFilter(threads: [7]))
        #expect(analysis.summary.allocationCalls == 1)
        #expect(analysis.summary.freeCalls == 1)
        #expect(analysis.summary.leakedBytes == 0)
        #expect(analysis.summary.peakBytes == 100)
        #expect(EventFilter().isEmpty)
    }
}

@Suite struct ThreadTotalsTests {
    @Test func threadsWhoseIdsCollideInTheCacheAreCountedApart() {
        var script = Script()
        for round in UInt64(0)..<50 {
            script.malloc(8, at: 0x1000 + round * 0x20, stack: 1, thread: 3)
            script.malloc(16, at: 0x1010 + round * 0x20, stack: 1, thread: 67)
            script.malloc(16, at: 0x9000 + round * 0x20, stack: 1, thread: 67)
        }
        var totals = ThreadTotals()
        inBatches(script.events, of: 4) { totals.consume($0) }
        #expect(totals.threads.map(\.threadID) == [3, 67])
        #expect(totals.threads.map(\.allocationCalls) == [50, 100])
        #expect(totals.threads.map(\.bytesAllocated) == [400, 1600])
    }

    @Test func batchesMatchEvents() {
        var script = Script()
        var random = LinearCongruential(seed: 5)
        var live: [(UInt64, UInt32)] = []
        var next: UInt64 = 0x1000
        for _ in 0..<3000 {
            let thread = UInt32(random.next() % 3)
            if live.isEmpty || random.next() % 2 == 0 {
                script.malloc(random.next() % 64, at: next, stack: 1, thread: thread)
                live.append((next, thread))
                next += 0x10
            } else {
                script.free(live.removeLast().0, thread: thread)
            }
        }
        var single = ThreadTotals()
        for event in script.events { single.consume(event) }
        var batched = ThreadTotals()
        inBatches(script.events, of: 7) { batched.consume($0) }
        #expect(batched.threads == single.threads)
        let calls: UInt64 = single.threads.reduce(0) { $0 + $1.allocationCalls + $1.freeCalls }
        #expect(calls == 3000)
    }
}

/// Hands `events` to `body` in consecutive batches of `size` (the last one shorter).
func inBatches(_ events: [AllocatorEvent], of size: Int, _ body: (Span<AllocatorEvent>) -> Void) {
    events.withUnsafeBufferPointer { all in
        var start = 0
        while start < all.count {
            let end = min(start + size, all.count)
            body(UnsafeBufferPointer(rebasing: all[start..<end]).span)
            start = end
        }
    }
}
