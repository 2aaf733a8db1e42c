import MallocTraceFormat
import Testing

@testable import MallocTraceAnalysis

/// Builds events with consecutive sequence numbers, as the reader delivers them.
struct Script {
    private(set) var events: [AllocatorEvent] = []
    private var sequence: UInt64 = 0
    var time: UInt64 = 0

    mutating func malloc(_ size: UInt64, at address: UInt64, stack: UInt32, thread: UInt32 = 1) {
        sequence += 1
        events.append(
            AllocatorEvent(
                kind: .allocation, function: .malloc, sequence: sequence, threadID: thread, time: time, size: size,
                address: address, stackID: stack))
    }

    mutating func free(_ address: UInt64, thread: UInt32 = 1) {
        sequence += 1
        events.append(
            AllocatorEvent(
                kind: .release, function: .free, sequence: sequence, threadID: thread, time: time, size: 0,
                address: address, stackID: 0))
    }

    mutating func failed(stack: UInt32) {
        sequence += 1
        events.append(
            AllocatorEvent(
                kind: .failedAllocation, function: .malloc, sequence: sequence, threadID: 1, time: time, size: 99,
                address: 0, stackID: stack))
    }

    func analyze() -> HeapAnalysis {
        var analyzer = HeapAnalyzer()
        for event in events { analyzer.consume(event) }
        return analyzer.result()
    }
}

extension HeapAnalysis {
    func site(_ stack: UInt32) -> SiteStatistics? { sites.first { $0.stackID == stack } }
}

@Suite struct HeapAnalyzerTests {
    @Test func byteTotalsSaturateInsteadOfWrapping() throws {
        var script = Script()
        script.malloc(1 << 63, at: 0x1000, stack: 1)
        script.malloc(1 << 63, at: 0x2000, stack: 1)
        script.malloc(5, at: 0x3000, stack: 1)
        let analysis = script.analyze()
        #expect(analysis.summary.bytesAllocated == .max)
        #expect(try #require(analysis.site(1)).bytesAllocated == .max)
        #expect(analysis.site(1)?.function == .malloc)
    }

    @Test func liveBlocksAreListedWithTheirStacks() {
        var script = Script()
        script.malloc(10, at: 0x1000, stack: 1)
        script.malloc(20, at: 0x2000, stack: 2)
        script.free(0x1000)
        var analyzer = HeapAnalyzer()
        for event in script.events { analyzer.consume(event) }
        var live: [UInt64: (UInt64, UInt32)] = [:]
        analyzer.forEachLiveBlock { address, size, stack in live[address] = (size, stack) }
        #expect(live.count == 1)
        #expect(live[0x2000]?.0 == 20 && live[0x2000]?.1 == 2)
    }

    @Test func countsBytesAndLeaks() throws {
        var script = Script()
        for index in UInt64(0)..<7 { script.malloc(100, at: 0x1000 + index * 0x100, stack: 1) }
        for index in UInt64(0)..<10 { script.malloc(33, at: 0x9000 + index * 0x100, stack: 2) }
        for index in UInt64(0)..<50 {
            script.malloc(index + 1, at: 0x20000, stack: 3)
            script.free(0x20000)
        }
        script.failed(stack: 3)
        let analysis = script.analyze()
        let summary = analysis.summary
        #expect(summary.allocationCalls == 67)
        #expect(summary.failedCalls == 1)
        #expect(summary.freeCalls == 50)
        #expect(summary.bytesAllocated == 700 + 330 + (1...50).reduce(0, +))
        #expect(summary.leakedBytes == 1030)
        #expect(summary.leakedBlocks == 17)
        #expect(summary.callsByFunction == [.malloc: 68, .free: 50])
        #expect(analysis.site(1)?.leakedBytes == 700)
        #expect(analysis.site(1)?.leakedBlocks == 7)
        #expect(analysis.site(2)?.leakedBytes == 330)
        #expect(analysis.site(3)?.leakedBlocks == 0)
        #expect(analysis.site(3)?.allocationCalls == 50)
    }

    @Test func peakIsExactAndContributorsSumToIt() throws {
        var script = Script()
        for index in UInt64(0)..<10 { script.malloc(1000, at: 0x1000 * (index + 1), stack: 1) }
        for index in UInt64(0)..<5 { script.free(0x1000 * (index + 1)) }
        script.time = 500
        script.malloc(20000, at: 0xA0000, stack: 2)  // peak: 25,000 in 6 blocks
        script.time = 600
        for index in UInt64(5)..<10 { script.free(0x1000 * (index + 1)) }
        script.malloc(4000, at: 0xB0000, stack: 3)  // 24,000: below the peak
        script.free(0xA0000)
        script.free(0xB0000)
        script.malloc(24999, at: 0xC0000, stack: 1)  // 24,999: just below the peak
        let analysis = script.analyze()
        #expect(analysis.summary.peakBytes == 25000)
        #expect(analysis.summary.peakBlocks == 6)
        #expect(analysis.summary.peakTime == 500)
        #expect(analysis.site(1)?.peakBytes == 5000)
        #expect(analysis.site(1)?.peakBlocks == 5)
        #expect(analysis.site(2)?.peakBytes == 20000)
        #expect(analysis.site(3)?.peakBytes == 0)
        #expect(analysis.sites.map(\.peakBytes).reduce(0, +) == analysis.summary.peakBytes)
    }

    /// Random programs: the lazily captured contributors must equal a brute-force snapshot at the peak.
    @Test func contributorsMatchBruteForce() throws {
        var random = LinearCongruential(seed: 7)
        for _ in 0..<50 {
            var script = Script()
            var live: [(UInt64, UInt32, UInt64)] = []
            var nextAddress: UInt64 = 0x1000
            for _ in 0..<400 {
                if live.isEmpty || random.next() % 3 != 0 {
                    let size = random.next() % 500 + 1
                    let stack = UInt32(random.next() % 6)
                    script.malloc(size, at: nextAddress, stack: stack)
                    live.append((nextAddress, stack, size))
                    nextAddress += 0x1000
                } else {
                    let victim = Int(random.next() % UInt64(live.count))
                    script.free(live.remove(at: victim).0)
                }
            }
            let analysis = script.analyze()
            // Replay up to the first event that reaches the peak and snapshot per stack.
            var current: [UInt64: (UInt32, UInt64)] = [:]
            var total: UInt64 = 0
            var snapshot: [UInt32: UInt64] = [:]
            for event in script.events {
                if event.kind == .allocation {
                    current[event.address] = (event.stackID, event.size)
                    total += event.size
                    if total == analysis.summary.peakBytes && snapshot.isEmpty {
                        for (stack, size) in current.values { snapshot[stack, default: 0] += size }
                    }
                } else if let block = current.removeValue(forKey: event.address) {
                    total -= block.1
                }
            }
            for site in analysis.sites {
                #expect(site.peakBytes == snapshot[site.stackID, default: 0])
            }
            #expect(analysis.sites.map(\.peakBytes).reduce(0, +) == analysis.summary.peakBytes)
        }
    }

    @Test func unmatchedFreesAreCountedNotFatal() {
        var script = Script()
        script.free(0xDEAD)
        script.malloc(8, at: 0x10, stack: 1)
        let analysis = script.analyze()
        #expect(analysis.summary.unmatchedFrees == 1)
        #expect(analysis.summary.freeCalls == 1)
        #expect(analysis.summary.leakedBytes == 8)
    }

    @Test func reusedAddressReplacesTheLostBlock() {
        var script = Script()
        script.malloc(8, at: 0x10, stack: 1)
        script.malloc(16, at: 0x10, stack: 2)  // its free was never seen
        let analysis = script.analyze()
        #expect(analysis.summary.leakedBytes == 16)
        #expect(analysis.summary.leakedBlocks == 1)
        #expect(analysis.site(1)?.leakedBlocks == 0)
    }

    @Test func hugeStackIDsAreKeptApart() {
        var script = Script()
        script.malloc(8, at: 0x10, stack: UInt32.max)
        script.malloc(8, at: 0x20, stack: UInt32.max - 1)
        let analysis = script.analyze()
        #expect(analysis.sites.count == 2)
        #expect(analysis.site(UInt32.max)?.leakedBytes == 8)
    }

    @Test func addressTableSurvivesChurn() {
        var table = AddressTable(capacity: 4)
        var reference: [UInt64: UInt64] = [:]
        var random = LinearCongruential(seed: 99)
        for _ in 0..<20000 {
            let key = (random.next() % 512 + 1) * 16
            if random.next() % 2 == 0 {
                let size = random.next() % 1000
                table.insert(key, size: size, slot: 0)
                reference[key] = size
            } else {
                #expect(table.remove(key)?.size == reference.removeValue(forKey: key))
            }
        }
        #expect(table.count == reference.count)
    }

    /// Sizes and slots too large for the packed entry keep their figures through growth, replacement and
    /// the shifts of deletion.
    @Test func addressTableKeepsOversizedFigures() {
        var table = AddressTable(capacity: 4)
        var reference: [UInt64: (size: UInt64, slot: Int32)] = [:]
        var random = LinearCongruential(seed: 7)
        for step in 0..<30000 {
            let key = (random.next() % 2048 + 1) * 16
            if random.next() % 3 != 0 {
                let huge = step % 5 == 0
                let size = huge ? (UInt64(1) << 40) + random.next() : random.next() % 4096
                let slot = step % 7 == 0 ? Int32.max - Int32(step) : Int32(random.next() % 1000)
                let previous = table.insert(key, size: size, slot: slot)
                #expect(previous?.size == reference[key]?.size && previous?.slot == reference[key]?.slot)
                reference[key] = (size, slot)
            } else {
                let removed = table.remove(key)
                let expected = reference.removeValue(forKey: key)
                #expect(removed?.size == expected?.size && removed?.slot == expected?.slot)
            }
        }
        var seen = 0
        table.forEach { key, size, slot in
            seen += 1
            #expect(reference[key]?.size == size && reference[key]?.slot == slot)
        }
        #expect(seen == reference.count && table.count == reference.count)
    }

    /// The bound: at most 32 bytes of table per live block with a million live blocks (and at every
    /// size on the way there, once past the initial table).
    @Test func addressTableNeedsAtMost32BytesPerLiveBlock() {
        var table = AddressTable()
        var largest = 0.0
        for index in 1...1_000_000 {
            table.insert(UInt64(index) &* 48 &+ 0x5555_0000_0000, size: UInt64(index % 500), slot: Int32(index % 3000))
            if index >= 10_000 { largest = max(largest, Double(table.allocatedBytes) / Double(table.count)) }
        }
        #expect(table.count == 1_000_000)
        #expect(Double(table.allocatedBytes) / 1_000_000 <= 32)
        #expect(largest <= 32)
    }
}

struct LinearCongruential {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 33
    }
}
