import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

/// The control API's events (0x88-0x8F) from hand-built chunks: decoding, and what the reader's ledger makes
/// of them before any analysis sees them.
@Suite struct ControlEventTests {
    private static func code(_ opcode: mt_event_opcode) -> UInt8 { UInt8(opcode.rawValue) }

    /// A control event: each value a varint, `name` (if any) as length and bytes at the end.
    private static func control(
        _ stream: inout Events, _ opcode: mt_event_opcode, _ values: [UInt64], name: String? = nil
    ) {
        var payload = Fields()
        for value in values { payload.varint(value) }
        if let name {
            payload.varint(UInt64(name.utf8.count))
            payload.bytes += Array(name.utf8)
        }
        stream.sized(code(opcode), payload.bytes)
    }

    private static func read(_ streams: [(thread: UInt32, events: Events)]) throws -> (TraceReader, [AllocatorEvent]) {
        var builder = TraceBuilder()
        builder.process()
        for stream in streams { builder.chunk(thread: stream.thread, events: stream.events) }
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        return (reader, events(of: reader))
    }

    @Test func poolEventsBecomeBlocksWithTheirPoolsStack() throws {
        var stream = Events()
        stream.stack(3, [0x40_1000, 0x40_2000])
        stream.allocation(seq: 1, size: 4096, at: 0x10_0000, stack: 3)
        Self.control(&stream, MT_EVENT_POOL_CREATE, [2, 7, 3], name: "arena")
        Self.control(&stream, MT_EVENT_POOL_BACKING, [3, 7, 0x10_0000])
        Self.control(&stream, MT_EVENT_POOL_ALLOC, [4, 7, 0x10_0000, 64, 3])
        Self.control(&stream, MT_EVENT_POOL_ALLOC, [5, 7, 0x10_0040, 32, 3])
        Self.control(&stream, MT_EVENT_POOL_FREE, [6, 7, 0x10_0000])
        Self.control(&stream, MT_EVENT_POOL_DESTROY, [7, 7])
        stream.free(seq: 8, at: 0x10_0000)
        let (reader, decoded) = try Self.read([(1, stream)])
        let summary = decoded.map { ($0.kind, $0.function, $0.sequence, $0.address, $0.size, $0.isPrimary) }
        #expect(summary.map(\.0) == [.allocation, .release, .allocation, .allocation, .release, .release])
        #expect(summary.map(\.1) == [.malloc, .poolBacking, .poolAlloc, .poolAlloc, .poolFree, .poolDestroy])
        #expect(summary.map(\.2) == [1, 3, 4, 5, 6, 7])  // the backing block's own free (8) is not delivered
        let keys = summary.map(\.3)
        #expect(keys[0] == 0x10_0000 && keys[1] == 0x10_0000)
        #expect(keys[2...].allSatisfy(PoolBlocks.isKey) && keys[2] != keys[3])
        #expect(keys[4] == keys[2] && keys[5] == keys[3])
        #expect(summary.map(\.5) == [true, false, true, true, true, false])
        let stackID = try #require(decoded.first { $0.function == .poolAlloc }?.stackID)
        #expect(stackID >= PoolBlocks.firstSyntheticStack)
        #expect(reader.stacks[stackID] == [PoolBlocks.frameAddress(pool: 7), 0x40_1000, 0x40_2000])
        #expect(reader.pools[7] == TracePool(id: 7, name: "arena", stackID: 3, backingBlocks: [0x10_0000]))
        #expect(reader.modules.contains { $0.poolName == "arena" && $0.contains(PoolBlocks.frameAddress(pool: 7)) })
        #expect(reader.diagnostics.isEmpty)
    }

    /// A destroyed pool's releases outnumber a batch: every one is delivered, in order, before what follows.
    @Test func aLargePoolsDestructionSpillsOverBatches() throws {
        var stream = Events()
        let count: UInt64 = 3000
        for index in 0..<count {
            Self.control(&stream, MT_EVENT_POOL_ALLOC, [index + 1, 1, 0x1000 + index * 16, 16, 0])
        }
        Self.control(&stream, MT_EVENT_POOL_DESTROY, [count + 1, 1])
        stream.allocation(seq: count + 2, size: 5, at: 0x9000_0000, stack: 0)
        let (_, decoded) = try Self.read([(1, stream)])
        #expect(decoded.count == Int(2 * count) + 1)
        #expect(decoded.count { $0.function == .poolDestroy && $0.kind == .release } == Int(count))
        #expect(decoded.last?.function == .malloc && decoded.last?.size == 5)
        #expect(zip(decoded, decoded.dropFirst()).allSatisfy { $0.sequence <= $1.sequence })
    }

    /// Whole batches dropped while paused are not the end of the trace; a pause by one thread drops another
    /// thread's allocations with later sequence numbers, and releases while paused are not calls.
    @Test func pausedAllocationsAreDroppedAcrossThreadsAndBatches() throws {
        var main = Events()
        main.allocation(seq: 1, size: 10, at: 0x1000, stack: 0)
        for index in UInt64(0)..<3000 {
            main.allocation(seq: 3 + index, size: 20, at: 0x10_0000 + index * 32, stack: 0)
        }
        main.free(seq: 3003, at: 0x1000)
        main.allocation(seq: 3005, size: 30, at: 0x2000, stack: 0)
        var other = Events()
        Self.control(&other, MT_EVENT_PAUSE, [2, 500, 1])
        Self.control(&other, MT_EVENT_PAUSE, [3004, 900, 0])
        let (reader, decoded) = try Self.read([(1, main), (2, other)])
        #expect(decoded.filter { $0.kind == .allocation }.map(\.size) == [10, 30])
        let release = try #require(decoded.first { $0.kind == .release })
        #expect(release.sequence == 3003 && !release.isPrimary)
        #expect(reader.marks.map(\.kind) == [.pause, .resume])
        #expect(reader.marks.map(\.time) == [500, 900])
    }

    @Test func marksAndSnapshotsCarryTheirNames() throws {
        var stream = Events()
        Self.control(&stream, MT_EVENT_MARK, [1, 100], name: "phase one")
        Self.control(&stream, MT_EVENT_SNAPSHOT, [2, 200], name: "after")
        Self.control(&stream, MT_EVENT_MARK, [3, 300], name: "phase one")
        let (reader, decoded) = try Self.read([(4, stream)])
        #expect(decoded.map(\.kind) == [.control, .control, .control])
        #expect(decoded.map(\.address) == ["phase one", "after", "phase one"].map(ControlNames.hash))
        #expect(reader.marks.map(\.name) == ["phase one", "after", "phase one"])
        #expect(reader.marks.map(\.kind) == [.mark, .snapshot, .mark])
        #expect(reader.marks.map(\.threadID) == [4, 4, 4])
    }

    @Test func damagedControlEventsEndTheirChunkWithADiagnostic() throws {
        var stream = Events()
        Self.control(&stream, MT_EVENT_POOL_ALLOC, [1, 1 << 40, 0x1000, 8, 0])
        var long = Events()
        Self.control(&long, MT_EVENT_MARK, [1, 100, 5000])  // a name of 5000 bytes that is not there
        var huge = Events()
        Self.control(&huge, MT_EVENT_MARK, [1, 100], name: String(repeating: "x", count: 2000))
        for damaged in [stream, long, huge] {
            let (reader, decoded) = try Self.read([(1, damaged)])
            #expect(decoded.isEmpty)
            #expect(reader.diagnostics.count == 1, "\(reader.diagnostics)")
        }
    }
}
