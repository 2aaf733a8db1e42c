import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

/// The ALLOCATOR record, CHUNK_INFO after allocations (and what the reader derives without one), MAPPING and MALLOPT.
@Suite struct AllocatorRecordTests {
    private func allocatorRecord(features: UInt32, glibc: Bool = true, threshold: UInt64 = 131_072) -> [UInt8] {
        var fields = Fields()
        fields.fixed(UInt32(glibc ? MT_ALLOCATOR_GLIBC.rawValue : MT_ALLOCATOR_OTHER.rawValue))
        fields.fixed(features)
        fields.fixed(UInt32(2))
        fields.fixed(UInt32(36))
        fields.fixed(threshold)
        fields.fixed(UInt32(1))
        fields.fixed(UInt32(0))
        return fields.bytes
    }

    private static let chunkInfo = UInt8(MT_EVENT_CHUNK_INFO.rawValue)
    private static let glibcFeatures = MT_ALLOCATOR_USABLE_SIZES.rawValue | MT_ALLOCATOR_CHUNK_FLAGS.rawValue

    private func info(_ slack: UInt64, mmapped: Bool = false, nonMain: Bool = false) -> [UInt8] {
        var fields = Fields()
        fields.varint(slack << 2 | (mmapped ? 2 : 0) | (nonMain ? 1 : 0))
        return fields.bytes
    }

    private func read(_ events: Events, features: UInt32?) throws -> (TraceReader, [AllocatorEvent]) {
        var builder = TraceBuilder()
        builder.process()
        if let features {
            builder.record(kind: MT_RECORD_ALLOCATOR.rawValue, payload: allocatorRecord(features: features))
        }
        builder.chunk(thread: 1, events: events)
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        var decoded: [AllocatorEvent] = []
        reader.forEachEvent { decoded.append($0) }
        return (reader, decoded)
    }

    @Test func layoutMatchesTheHeader() {
        #expect(MemoryLayout<mt_allocator_record_t>.size == 32)
        #expect(FormatLayout.offset(\mt_allocator_record_t.features) == 4)
        #expect(FormatLayout.offset(\mt_allocator_record_t.libc_major) == 8)
        #expect(FormatLayout.offset(\mt_allocator_record_t.mmap_threshold) == 16)
        #expect(FormatLayout.offset(\mt_allocator_record_t.threshold_is_dynamic) == 24)
        #expect(MT_EVENT_CHUNK_INFO.rawValue >= MT_EVENT_FIRST_SIZED.rawValue)
        #expect(MemoryLayout<AllocatorEvent>.size <= 56)
    }

    @Test func usableSizesAreReadOrDerived() throws {
        var events = Events()
        events.allocation(seq: 1, size: 25, at: 0x1000, stack: 0)  // derived: 48-byte chunk, 40 usable
        events.allocation(seq: 2, size: 200_000, at: 0x9000_0000, stack: 0)
        events.sized(Self.chunkInfo, info(688, mmapped: true))
        events.allocation(seq: 3, size: 100, at: 0x2000, stack: 0)
        events.sized(Self.chunkInfo, info(4, nonMain: true))  // a thread arena: the chunk's state from here on
        events.allocation(seq: 4, size: 1, at: 0x3000, stack: 0)  // derived: 24 usable, still a thread arena
        events.realloc(before: 5, after: 6, size: 50, from: 0x3000, to: 0x4000, stack: 0)
        events.allocation(seq: 7, size: 9, at: 0, stack: 0)  // failed: nothing to describe
        let (reader, decoded) = try read(events, features: Self.glibcFeatures)
        #expect(reader.allocator?.isGlibc == true && reader.allocator?.libcVersion == "2.36")
        #expect(reader.diagnostics.isEmpty)
        let allocations = decoded.filter { $0.kind != .release }
        #expect(allocations.map { $0.usableSize } == [40, 200_688, 104, 24, 56, nil])
        #expect(
            allocations.map(\.chunk) == [
                [.known], [.known, .mmapped], [.known, .nonMainArena], [.known, .nonMainArena],
                [.known, .nonMainArena], [],
            ])
    }

    @Test func olderTracesHaveNoUsableSizes() throws {
        var events = Events()
        events.allocation(seq: 1, size: 25, at: 0x1000, stack: 0)
        let (reader, decoded) = try read(events, features: nil)
        #expect(reader.allocator == nil)
        #expect(decoded.map(\.usableSize) == [nil])
    }

    @Test func anotherAllocatorIsExactUnlessRecorded() throws {
        var builder = TraceBuilder()
        builder.process()
        builder.record(
            kind: MT_RECORD_ALLOCATOR.rawValue,
            payload: allocatorRecord(features: MT_ALLOCATOR_USABLE_SIZES.rawValue, glibc: false))
        var events = Events()
        events.allocation(seq: 1, size: 25, at: 0x1000, stack: 0)
        events.allocation(seq: 2, size: 4097, at: 0x2000, stack: 0)
        events.sized(Self.chunkInfo, info(1023))
        builder.chunk(thread: 1, events: events)
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        var decoded: [AllocatorEvent] = []
        reader.forEachEvent { decoded.append($0) }
        #expect(decoded.map(\.usableSize) == [25, 5120])
    }

    @Test func mappingsAndMalloptCallsAreCollected() throws {
        var events = Events()
        var mmap = Fields()
        for value: UInt64 in [3, 0, 7, 0x7f00_0000_0000, 1 << 20, 3, 0x22] { mmap.varint(value) }
        events.sized(UInt8(MT_EVENT_MAPPING.rawValue), mmap.bytes)
        var unknown = Fields()
        for value: UInt64 in [4, 99, 0, 0, 0, 0, 0] { unknown.varint(value) }
        events.sized(UInt8(MT_EVENT_MAPPING.rawValue), unknown.bytes)
        var mallopt = Fields()
        mallopt.varint(1)
        mallopt.zigzag(-3)
        mallopt.zigzag(65_536)
        mallopt.varint(1)
        events.sized(UInt8(MT_EVENT_MALLOPT.rawValue), mallopt.bytes)
        events.allocation(seq: 2, size: 8, at: 0x1000, stack: 0)
        let (reader, _) = try read(events, features: Self.glibcFeatures | MT_ALLOCATOR_MAPPINGS.rawValue)
        #expect(reader.allocator?.recordsMappings == true)
        #expect(
            reader.mappings == [
                MappingEvent(
                    call: .mmap, sequence: 3, time: 0, threadID: 1, stackID: 7, address: 0x7f00_0000_0000,
                    length: 1 << 20, protection: 3, flags: 0x22)
            ])
        #expect(reader.malloptCalls == [MalloptCall(sequence: 1, time: 0, parameter: -3, value: 65_536, result: 1)])
    }

    @Test func aShortAllocatorRecordIsSkippedWithADiagnostic() throws {
        var builder = TraceBuilder()
        builder.process()
        builder.record(kind: MT_RECORD_ALLOCATOR.rawValue, payload: [UInt8](repeating: 1, count: 20))
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(reader.allocator == nil)
        #expect(reader.diagnostics.map(\.message) == ["allocator record of 20 bytes is too small"])
    }

    @Test func aChunkInfoCutShortEndsTheChunkWithADiagnostic() throws {
        var events = Events()
        events.allocation(seq: 1, size: 25, at: 0x1000, stack: 0)
        events.raw([Self.chunkInfo, 5, 0x80])  // claims 5 bytes, the chunk ends after 1
        let (reader, decoded) = try read(events, features: Self.glibcFeatures)
        #expect(decoded.isEmpty)
        #expect(reader.diagnostics.count == 1)
    }
}
