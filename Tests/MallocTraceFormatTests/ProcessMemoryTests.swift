import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

/// PROCESS_STATS records and RSS_SAMPLE events: the process's memory as the kernel counted it.
@Suite struct ProcessMemoryTests {
    private func statsRecord(time: UInt64, peak: UInt64, resident: UInt64, breakBytes: UInt64) -> [UInt8] {
        var fields = Fields()
        for value in [time, peak, resident, breakBytes, 0x5555_0000] { fields.fixed(value) }
        fields.fixed(MT_END_DESTRUCTOR.rawValue)
        fields.fixed(UInt32(0))
        return fields.bytes
    }

    private func sample(_ time: UInt64, _ resident: UInt64, _ breakBytes: UInt64) -> [UInt8] {
        var fields = Fields()
        for value in [time, resident, breakBytes] { fields.varint(value) }
        return fields.bytes
    }

    private static let sampleCode = UInt8(MT_EVENT_RSS_SAMPLE.rawValue)

    @Test func layoutMatchesTheHeader() {
        #expect(MemoryLayout<mt_process_stats_record_t>.size == 48)
        let fields: [(KeyPath<mt_process_stats_record_t, UInt64>, Int)] = [
            (\.time_ns, 0), (\.peak_rss_bytes, 8), (\.rss_bytes, 16), (\.brk_bytes, 24), (\.start_break, 32),
        ]
        for (field, offset) in fields { #expect(FormatLayout.offset(field) == offset, "\(field)") }
        #expect(FormatLayout.offset(\mt_process_stats_record_t.how) == 40)
        #expect(MT_EVENT_RSS_SAMPLE.rawValue >= MT_EVENT_FIRST_SIZED.rawValue)
    }

    @Test func theLastStatsRecordIsTheProcessMemory() throws {
        var builder = TraceBuilder()
        builder.process()
        builder.record(
            kind: MT_RECORD_PROCESS_STATS.rawValue, payload: statsRecord(time: 5, peak: 1, resident: 1, breakBytes: 1))
        builder.record(
            kind: MT_RECORD_PROCESS_STATS.rawValue,
            payload: statsRecord(time: 9_000, peak: 70_000_000, resident: 2_000_000, breakBytes: 135_168))
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(
            reader.processMemory
                == ProcessMemory(
                    time: 9_000, peakResidentBytes: 70_000_000, residentBytes: 2_000_000, breakBytes: 135_168,
                    startBreak: 0x5555_0000))
        #expect(reader.diagnostics.isEmpty)
    }

    @Test func aShortStatsRecordIsSkippedWithADiagnostic() throws {
        var builder = TraceBuilder()
        builder.process()
        builder.record(kind: MT_RECORD_PROCESS_STATS.rawValue, payload: [UInt8](repeating: 1, count: 40))
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(reader.processMemory == nil)
        #expect(reader.diagnostics.map(\.message) == ["process stats record of 40 bytes is too small"])
    }

    @Test func samplesOfAllThreadsComeOutInTimeOrderBesideTheHeapEvents() throws {
        var first = Events()
        first.sized(Self.sampleCode, sample(30, 3_000, 0))
        first.allocation(seq: 1, size: 16, at: 0x1000, stack: 0)
        first.sized(Self.sampleCode, sample(10, 1_000, 4_096))
        var second = Events()
        second.sized(Self.sampleCode, sample(20, 2_000, 8_192))
        second.free(seq: 2, at: 0x1000)
        var builder = TraceBuilder()
        builder.process()
        builder.chunk(thread: 1, events: first)
        builder.chunk(thread: 2, events: second)
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        var events: [AllocatorEvent] = []
        reader.forEachEvent { events.append($0) }
        #expect(events.map(\.sequence) == [1, 2])
        #expect(
            reader.residentSamples == [
                ResidentSample(time: 10, residentBytes: 1_000, breakBytes: 4_096),
                ResidentSample(time: 20, residentBytes: 2_000, breakBytes: 8_192),
                ResidentSample(time: 30, residentBytes: 3_000, breakBytes: 0),
            ])
        #expect(reader.diagnostics.isEmpty)
    }

    @Test func aSampleCutInsideItsPayloadEndsTheChunkWithADiagnostic() throws {
        var events = Events()
        events.allocation(seq: 1, size: 16, at: 0x1000, stack: 0)
        events.sized(Self.sampleCode, [0x80])  // a varint that never ends, inside the declared length
        var builder = TraceBuilder()
        builder.process()
        builder.chunk(thread: 1, events: events)
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        var count = 0
        reader.forEachEvent { _ in count += 1 }
        #expect(count == 1)
        #expect(reader.residentSamples.isEmpty)
        #expect(reader.diagnostics.count == 1)
    }

    @Test func downsamplingKeepsTheLargestOfEachRun() {
        let samples = (0..<1_000).map { ResidentSample(time: UInt64($0), residentBytes: UInt64($0 % 7), breakBytes: 0) }
        let kept = ResidentSample.downsampled(samples, to: 100)
        #expect(kept.count == 100)
        #expect(kept.allSatisfy { $0.residentBytes == 6 })
        #expect(zip(kept, kept.dropFirst()).allSatisfy { $0.time < $1.time })
        #expect(ResidentSample.downsampled(Array(samples.prefix(50)), to: 100).count == 50)
        #expect(ResidentSample.downsampled(samples, to: 0).isEmpty)
    }
}
