import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

/// The trace rewritten as version 3, as `malloctrace compress` writes it.
func keyed(_ bytes: [UInt8], level: Int = KeyedTraceEncoder.defaultLevel) throws -> [UInt8] {
    try rewritten(bytes) { input, write throws(TraceCompressor.Failure) in
        try KeyedTraceEncoder(level: level).encode(input, write: write)
    }
}

/// Version 3 (keyed blocks, docs/trace-format.md 6.9) must read exactly like the trace it came from: the same
/// events field by field, addresses aside, and the same pairing of every release with its allocation.
@Suite struct KeyedEncodingTests {
    /// What a consumer that pairs by address makes of each event: the allocation (by index) that a release
    /// releases or an allocation replaces, nil for none.
    enum Pairing: Equatable {
        case none, released(Int?), replaced(Int?)
    }

    static func pairings(_ events: [AllocatorEvent]) -> [Pairing] {
        var live: [UInt64: Int] = [:]
        return events.enumerated().map { index, event in
            switch event.kind {
            case .allocation:
                defer { live[event.address] = index }
                return .replaced(live[event.address])
            case .release: return .released(live.removeValue(forKey: event.address))
            case .failedAllocation, .control: return .none
            }
        }
    }

    static func withoutAddresses(_ events: [AllocatorEvent]) -> [AllocatorEvent] {
        events.map {
            var event = $0
            event.address = 0
            return event
        }
    }

    /// Threads that allocate, free and reallocate over a handful of addresses, so that frees of other threads'
    /// blocks, frees of unknown blocks, allocations over live blocks (lost frees), failed calls and every form of
    /// realloc all happen; small chunks, so that the encoder joins them; CHUNK_INFO events in a thread arena.
    static func contendedTrace(seed: UInt64, threadCount: Int, eventCount: Int) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        var builder = TraceBuilder()
        builder.process()
        // glibc, usable sizes and chunk flags: allocations without CHUNK_INFO get the chunk's arena.
        var allocator = [UInt8]()
        for value: UInt32 in [1, 3, 2, 36] { allocator += withUnsafeBytes(of: value.littleEndian, Array.init) }
        allocator += withUnsafeBytes(of: UInt64(131_072).littleEndian, Array.init)
        allocator += withUnsafeBytes(of: UInt32(1).littleEndian, Array.init) + [0, 0, 0, 0]
        builder.record(kind: MT_RECORD_ALLOCATOR.rawValue, payload: allocator)
        var chunks = (0..<threadCount).map { _ in Events() }
        // Stacks of every thread against modules loaded and unloaded by thread 0: what a stack resolves against
        // depends on the order in which the reader meets the threads' side events.
        var nextStack: UInt64 = 1
        var nextModule: UInt64 = 1
        var lengths = [Int](repeating: 0, count: threadCount)
        var sequence: UInt64 = 0
        let address = { (random: inout SplitMix64) -> UInt64 in
            random.next() % 12 == 0 ? 0 : 0x5555_0000_0000 + random.next() % 24 * 32
        }
        for _ in 0..<eventCount {
            let thread = Int(random.next() % UInt64(threadCount))
            sequence += random.next() % 5 == 0 ? 2 : 1
            let stack = random.next() % 4
            let size = random.next() % 3 == 0 ? 0 : random.next() % 200
            switch random.next() % 10 {
            case 0, 1:
                let before = sequence
                sequence += random.next() % 3 + 1  // other threads' events may fall in between
                chunks[thread].realloc(
                    before: before, after: sequence, size: size,
                    from: random.next() % 4 == 0 ? 0 : address(&random), to: address(&random), stack: stack)
            case 2, 3, 4:
                chunks[thread].free(seq: sequence, at: address(&random) | 1)  // never NULL
            case 5:
                chunks[thread].allocation(
                    MT_EVENT_MEMALIGN, seq: sequence, size: size, at: address(&random), stack: stack, alignment: 64)
            default:
                chunks[thread].allocation(
                    random.next() % 3 == 0 ? MT_EVENT_CALLOC : MT_EVENT_MALLOC, seq: sequence, size: size,
                    at: address(&random), stack: stack)
                if random.next() % 3 == 0 {
                    // Usable bytes beyond the request, mmapped or not, main arena or a thread's.
                    var info = [UInt8]()
                    info.appendVarint((random.next() % 40) << 2 | random.next() % 4)
                    chunks[thread].sized(UInt8(MT_EVENT_CHUNK_INFO.rawValue), info)
                }
            }
            if random.next() % 97 == 0 { chunks[thread].time(sequence * 1000) }
            if random.next() % 41 == 0 {
                chunks[thread].stack(nextStack, [0x40_0000 + random.next() % 4096, 0x40_1000])
                nextStack += 1
            }
            if thread == 0 && random.next() % 53 == 0 {
                if random.next() % 3 == 0 && nextModule > 1 {
                    var unload = [UInt8]()
                    unload.appendVarint(random.next() % (nextModule - 1) + 1)
                    chunks[0].sized(UInt8(MT_EVENT_MODULE_UNLOAD.rawValue), unload)
                } else {
                    chunks[0].module(
                        id: nextModule, bias: 0x40_0000, segments: [(0x40_0000, 0x2000)], buildID: [1, 2],
                        path: "/lib/m\(nextModule).so")
                    nextModule += 1
                }
            }
            lengths[thread] += 1
            if lengths[thread] > Int(random.next() % 60) + 5 {
                builder.chunk(thread: 200 + UInt32(thread), events: chunks[thread], slack: Int(random.next() % 16))
                chunks[thread] = Events()
                lengths[thread] = 0
            }
        }
        for thread in 0..<threadCount { builder.chunk(thread: 200 + UInt32(thread), events: chunks[thread]) }
        builder.end(lastSequence: sequence)
        return builder.bytes
    }

    @Test(arguments: [1, 2, 5, 40])
    func keyedTraceReadsLikeTheTraceItCameFrom(threadCount: Int) throws {
        for seed in UInt64(1)...8 {
            let raw = Self.contendedTrace(
                seed: seed * 131 + UInt64(threadCount), threadCount: threadCount, eventCount: 4000)
            let original = events(of: try TraceReader(bytes: raw))
            let packed = try keyed(raw)
            for options in DecodingPathTests.allOptions {
                let (events, reader) = try DecodingPathTests.events(of: packed, options: options)
                #expect(reader.formatVersion == 3 && reader.hasKeyedBlocks)
                #expect(reader.diagnostics.isEmpty, "\(reader.diagnostics)")
                #expect(Self.withoutAddresses(events) == Self.withoutAddresses(original), "seed \(seed), \(options)")
                #expect(Self.pairings(events) == Self.pairings(original), "seed \(seed), \(options)")
                #expect(events.allSatisfy { $0.address == 0 || BlockKey.isKey($0.address) || $0.kind == .release })
            }
            let reader = try TraceReader(bytes: packed)
            let source = try TraceReader(bytes: raw)
            #expect(reader.process == source.process && reader.end == source.end)
            #expect(reader.threadIDs == source.threadIDs)
            _ = events(of: source)
            _ = events(of: reader)
            #expect(reader.stacks == source.stacks && reader.stackGenerations == source.stackGenerations)
            #expect(reader.modules == source.modules)
            #expect(reader.allocator == source.allocator)
        }
    }

    /// The random traces of the other format tests: every opcode, long varints, stacks, gaps in sequence numbers.
    @Test func randomTracesReadTheSame() throws {
        for seed in UInt64(1)...6 {
            let trace = RandomTrace(seed: seed * 17, threadCount: Int(seed % 4) + 1, eventCount: 3000)
            let (events, reader) = try DecodingPathTests.events(of: try keyed(trace.bytes), options: .init())
            #expect(Self.withoutAddresses(events) == Self.withoutAddresses(trace.expected), "seed \(seed)")
            #expect(Self.pairings(events) == Self.pairings(trace.expected), "seed \(seed)")
            #expect(reader.stacks == trace.stacks)
        }
    }

    @Test func keysLieBetweenAddressesAndPoolKeys() {
        let first = BlockKey.of(sequence: 0)
        let last = BlockKey.of(sequence: UInt64.max)
        #expect(first == 1 << MT_BLOCK_KEY_BIT && last == first | ((1 << MT_BLOCK_KEY_SEQ_BITS) - 1))
        #expect(BlockKey.isKey(first) && BlockKey.isKey(last) && BlockKey.isKey(BlockKey.of(sequence: 12345)))
        #expect(!BlockKey.isKey(first - 1) && !BlockKey.isKey(last + 1) && !BlockKey.isKey(0x7FFF_FFFF_F000))
        #expect(!PoolBlocks.isKey(last) && !BlockKey.isKey(PoolBlocks.keyTag))
    }

    /// A program's allocations repeat: keyed, the trace is far smaller than version 2 of the same events.
    @Test func keyedTraceIsSmallerThanVersion2() throws {
        var builder = TraceBuilder()
        builder.process()
        var stream = Events()
        var random = SplitMix64(seed: 5)
        for index in UInt64(0)..<40000 {
            let slot = random.next() % 64
            stream.allocation(
                seq: 2 * index + 1, size: 16 + index % 7 * 8, at: 0x5555_0000 + slot * 4096, stack: index % 5)
            stream.free(seq: 2 * index + 2, at: 0x5555_0000 + slot * 4096)
        }
        builder.chunk(thread: 1, events: stream)
        builder.end()
        let version2 = try compressed(builder.bytes, level: 3)
        let version3 = try keyed(builder.bytes)
        #expect(version3.count * 3 < version2.count, "version 2: \(version2.count) bytes, version 3: \(version3.count)")
    }

    /// What version 3 cannot say exactly is refused, so that the caller writes version 2.
    @Test func damagedOrPoolBackedTracesAreNotKeyed() throws {
        let sample = RobustnessTests.sampleTrace()
        #expect(throws: TraceCompressor.Failure.notKeyable("the trace is cut short")) {
            try keyed(Array(sample.prefix(sample.count - 5)))
        }
        var damaged = TraceBuilder()
        damaged.process()
        var stream = Events()
        stream.allocation(seq: 1, size: 8, at: 0x1000, stack: 0)
        stream.raw([0x7F, 1, 2])
        damaged.chunk(thread: 1, events: stream)
        #expect(throws: TraceCompressor.Failure.notKeyable("unknown event opcode 0x7f")) { try keyed(damaged.bytes) }
        var pooled = TraceBuilder()
        pooled.process()
        var events = Events()
        events.allocation(seq: 1, size: 64, at: 0x1000, stack: 0)
        var payload = [UInt8]()
        for value: UInt64 in [2, 1, 0x1000] { payload.appendVarint(value) }
        events.sized(UInt8(MT_EVENT_POOL_BACKING.rawValue), payload)
        pooled.chunk(thread: 1, events: events)
        #expect(throws: TraceCompressor.Failure.notKeyable("a pool claims heap blocks (malloctrace_pool_backing)")) {
            try keyed(pooled.bytes)
        }
        #expect(throws: TraceCompressor.Failure.alreadyCompressed) { try keyed(try keyed(sample)) }
    }

    /// `compress` is given whatever file a user has: damaged raw traces are refused (version 2 is written instead)
    /// or encoded into a trace that reads, never a crash.
    @Test func damagedRawTracesNeverCrashTheEncoder() throws {
        let original = Self.contendedTrace(seed: 9, threadCount: 3, eventCount: 2000)
        var generator = SplitMix64(seed: 0x3304)
        var (refused, encoded) = (0, 0)
        for _ in 0..<2000 {
            let bytes = RobustnessTests.damaged(original, using: &generator)
            guard let packed = try? keyed(bytes) else {
                refused += 1
                continue
            }
            encoded += 1
            _ = events(of: try TraceReader(bytes: packed))
        }
        #expect(refused > 100 && encoded > 100, "refused \(refused), encoded \(encoded)")
    }

    /// The leak kinds of the blocks live at the end survive: the scan's addresses of those blocks become keys.
    @Test func leakScanFollowsTheKeys() throws {
        var builder = TraceBuilder()
        builder.process()
        var stream = Events()
        stream.allocation(seq: 1, size: 10, at: 0x1000, stack: 0)
        stream.allocation(seq: 2, size: 20, at: 0x2000, stack: 0)
        stream.free(seq: 3, at: 0x1000)
        stream.allocation(seq: 4, size: 30, at: 0x1000, stack: 0)
        builder.chunk(thread: 1, events: stream)
        var scan = [UInt8](repeating: 0, count: MemoryLayout<mt_leak_scan_record_t>.size)
        scan[16] = 0  // part 0
        scan[20] = 3  // entry_count
        scan[44] = 3  // total_blocks
        // 0x1000 definite, 0x2000 reachable, 0x3000 (not live at the end) indirect
        scan.appendVarint(0x1000 << 3 | 3)
        scan.appendVarint(0x1000 << 3 | 0)
        scan.appendVarint(0x1000 << 3 | 1)
        builder.record(kind: MT_RECORD_LEAK_SCAN.rawValue, payload: scan)
        builder.end()
        let reader = try TraceReader(bytes: try keyed(builder.bytes))
        let live = events(of: reader).filter { $0.kind == .allocation }.suffix(2)
        #expect(live.map(\.address) == [BlockKey.of(sequence: 2), BlockKey.of(sequence: 4)])
        #expect(reader.leakScan?.kind(ofBlockAt: BlockKey.of(sequence: 4)) == .definite)
        #expect(reader.leakScan?.kind(ofBlockAt: BlockKey.of(sequence: 2)) == .reachable)
        #expect(reader.leakScan?.kind(ofBlockAt: 0x3000) == .indirect)
    }

    /// A keyed trace is untrusted input like any other: a missing or damaged pair table and random damage give
    /// diagnostics, never a crash.
    @Test func damagedKeyedTracesNeverCrash() throws {
        let original = try keyed(Self.contendedTrace(seed: 3, threadCount: 3, eventCount: 3000))
        let damaged = RobustnessTests.diagnosedDamage(of: original, seed: 0x3303)
        #expect(damaged > 1000)
        // Without its pair table, every chunk with a keyed allocation ends at it.
        var withoutPairs = original
        let pairsKind = UInt8(MT_RECORD_PAIRS.rawValue)
        var offset = 16
        while offset + 8 <= withoutPairs.count {
            let length = withoutPairs[offset + 4..<offset + 8].reversed().reduce(0) { $0 << 8 | Int($1) }
            if withoutPairs[offset] == pairsKind { withoutPairs[offset] = UInt8(MT_RECORD_PADDING.rawValue) }
            offset = (offset + 8 + length + 7) & ~7
        }
        let reader = try TraceReader(bytes: withoutPairs)
        _ = events(of: reader)
        #expect(reader.diagnostics.contains { $0.message.contains("is not in the trace's table of 0 pairs") })
    }
}
