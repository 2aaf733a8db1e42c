import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

func events(of reader: TraceReader) -> [AllocatorEvent] {
    var result: [AllocatorEvent] = []
    reader.forEachEvent { result.append($0) }
    return result
}

@Suite struct EventTests {
    @Test func singleThreadEventsDecodeExactly() throws {
        var stream = Events()
        stream.time(1_000)
        stream.stack(1, [0x40_1234, 0x40_1000, 0x7f00_0000_1000])
        stream.allocation(seq: 1, size: 100, at: 0x5000_0010, stack: 1)
        stream.allocation(MT_EVENT_CALLOC, seq: 2, size: 33, at: 0x5000_0100, stack: 1)
        stream.time(2_000)
        stream.free(seq: 3, at: 0x5000_0010)
        stream.allocation(MT_EVENT_POSIX_MEMALIGN, seq: 4, size: 50, at: 0x5000_1000, stack: 1, alignment: 64)
        stream.allocation(seq: 5, size: 1 << 40, at: 0, stack: 1)
        var builder = TraceBuilder()
        builder.process()
        builder.chunk(thread: 7, events: stream, slack: 40)
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        let decoded = events(of: reader)
        #expect(
            decoded == [
                AllocatorEvent(
                    kind: .allocation, function: .malloc, sequence: 1, threadID: 7, time: 1_000, size: 100,
                    address: 0x5000_0010, stackID: 1),
                AllocatorEvent(
                    kind: .allocation, function: .calloc, sequence: 2, threadID: 7, time: 1_000, size: 33,
                    address: 0x5000_0100, stackID: 1),
                AllocatorEvent(
                    kind: .release, function: .free, sequence: 3, threadID: 7, time: 2_000, size: 0,
                    address: 0x5000_0010, stackID: 0),
                AllocatorEvent(
                    kind: .allocation, function: .posixMemalign, sequence: 4, threadID: 7, time: 2_000, size: 50,
                    address: 0x5000_1000, stackID: 1, alignment: 64),
                AllocatorEvent(
                    kind: .failedAllocation, function: .malloc, sequence: 5, threadID: 7, time: 2_000, size: 1 << 40,
                    address: 0, stackID: 1),
            ])
        #expect(reader.stacks == [1: [0x40_1234, 0x40_1000, 0x7f00_0000_1000]])
        #expect(reader.diagnostics.isEmpty)
    }

    @Test func threadsMergeInSequenceOrder() throws {
        // Thread 1 allocates and thread 2 frees; their chunks are laid out in the opposite order.
        var first = Events()
        first.allocation(seq: 1, size: 10, at: 0x1000, stack: 0)
        first.allocation(seq: 4, size: 20, at: 0x2000, stack: 0)
        var second = Events()
        second.free(seq: 2, at: 0x1000)
        second.allocation(seq: 3, size: 30, at: 0x3000, stack: 0)
        second.free(seq: 5, at: 0x2000)
        var builder = TraceBuilder()
        builder.chunk(thread: 2, events: second)
        builder.chunk(thread: 1, events: first)
        let decoded = events(of: try TraceReader(bytes: builder.bytes))
        #expect(decoded.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(decoded.map(\.threadID) == [1, 2, 2, 1, 2])
    }

    @Test func chunksOfOneThreadKeepFileOrderAndResetDeltas() throws {
        var early = Events()
        early.allocation(seq: 10, size: 1, at: 0xAAAA_0000, stack: 0)
        var late = Events()
        late.free(seq: 11, at: 0xAAAA_0000)
        var builder = TraceBuilder()
        builder.chunk(thread: 5, events: early)
        builder.chunk(thread: 5, events: late)
        let decoded = events(of: try TraceReader(bytes: builder.bytes))
        #expect(decoded.map(\.address) == [0xAAAA_0000, 0xAAAA_0000])
        #expect(decoded.map(\.kind) == [.allocation, .release])
    }

    @Test func reallocSplitsIntoReleaseThenAllocation() throws {
        var stream = Events()
        stream.allocation(seq: 1, size: 30, at: 0x1000, stack: 0)
        stream.realloc(before: 2, after: 3, size: 4000, from: 0x1000, to: 0x9000, stack: 2)  // moved
        stream.realloc(before: 4, after: 5, size: 8000, from: 0x9000, to: 0, stack: 2)  // failed: block intact
        stream.realloc(before: 6, after: 7, size: 0, from: 0x9000, to: 0, stack: 2)  // realloc(p, 0) frees
        stream.realloc(before: 8, after: 9, size: 16, from: 0, to: 0x7000, stack: 2)  // realloc(NULL, n)
        var builder = TraceBuilder()
        builder.chunk(thread: 1, events: stream)
        let decoded = events(of: try TraceReader(bytes: builder.bytes))
        let summary = decoded.map { ($0.kind, $0.sequence, $0.address, $0.isPrimary) }
        #expect(summary.count == 6)
        #expect(summary[1] == (.release, 2, 0x1000, false))
        #expect(summary[2] == (.allocation, 3, 0x9000, true))
        #expect(summary[3] == (.failedAllocation, 5, 0, true))
        #expect(summary[4] == (.release, 6, 0x9000, true))
        #expect(summary[5] == (.allocation, 9, 0x7000, true))
    }

    @Test func modulesAndUnknownSizedEventsAreHandled() throws {
        var stream = Events()
        stream.module(
            id: 1, bias: 0x5555_0000, segments: [(0x5555_0000, 0x2000)], buildID: [0xab, 0x01], path: "/bin/x")
        stream.sized(0xEE, [9, 9, 9])  // a future event kind: skipped by its length
        stream.sized(UInt8(MT_EVENT_MODULE_UNLOAD.rawValue), [1])
        stream.allocation(seq: 1, size: 8, at: 0x10, stack: 0)
        var builder = TraceBuilder()
        builder.chunk(thread: 1, events: stream)
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(events(of: reader).count == 1)
        let module = try #require(reader.modules.first)
        #expect(module.path == "/bin/x")
        #expect(module.buildIDHex == "ab01")
        #expect(module.contains(0x5555_1fff))
        #expect(!module.contains(0x5555_2000))
        #expect(module.isUnloaded)
    }

    @Test func corruptEventSkipsOnlyTheRestOfItsChunk() throws {
        var bad = Events()
        bad.allocation(seq: 1, size: 8, at: 0x10, stack: 0)
        bad.raw([0x7F, 1, 2, 3])  // not an opcode
        bad.allocation(seq: 2, size: 8, at: 0x20, stack: 0)
        var good = Events()
        good.allocation(seq: 3, size: 8, at: 0x30, stack: 0)
        var builder = TraceBuilder()
        builder.chunk(thread: 1, events: bad)
        builder.chunk(thread: 2, events: good)
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(events(of: reader).map(\.sequence) == [1, 3])
        #expect(reader.diagnostics.count == 1)
        #expect(reader.diagnostics.first?.message.contains("unknown event opcode 0x7f") == true)
    }

    @Test func readingTwiceGivesTheSameEvents() throws {
        var stream = Events()
        stream.stack(1, [1, 2])
        stream.allocation(seq: 1, size: 8, at: 0x10, stack: 1)
        var builder = TraceBuilder()
        builder.chunk(thread: 1, events: stream)
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(events(of: reader) == events(of: reader))
        #expect(reader.stacks.count == 1)
    }
}
