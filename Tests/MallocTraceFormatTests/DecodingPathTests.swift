import Foundation
import Testing

@testable import MallocTraceFormat

/// The reader has several ways to the same events: the decoder's common-event loop or its general path,
/// decoding on the calling thread or on a second one, and a merge that takes whole runs of one thread's
/// events at a time. Each must deliver exactly the events the trace holds, in sequence order.
@Suite struct DecodingPathTests {
    static let allOptions: [TraceReader.DecodingOptions] = [
        .init(thread: .caller, usesCommonEventLoop: true),
        .init(thread: .caller, usesCommonEventLoop: false),
        .init(thread: .background, usesCommonEventLoop: true),
        .init(thread: .background, usesCommonEventLoop: false),
    ]

    static func events(of bytes: [UInt8], options: TraceReader.DecodingOptions) throws -> (
        events: [AllocatorEvent], reader: TraceReader
    ) {
        let reader = try TraceReader(bytes: bytes)
        reader.decodingOptions = options
        return (MallocTraceFormatTests.events(of: reader), reader)
    }

    @Test(arguments: [1, 2, 3, 8, 40])
    func everyPathDeliversTheTraceInSequenceOrder(threadCount: Int) throws {
        for seed in UInt64(1)...12 {
            let trace = RandomTrace(seed: seed * 7919 + UInt64(threadCount), threadCount: threadCount, eventCount: 3000)
            for options in Self.allOptions {
                let (events, reader) = try Self.events(of: trace.bytes, options: options)
                #expect(events == trace.expected, "seed \(seed), \(options)")
                #expect(reader.stacks == trace.stacks)
                #expect(reader.diagnostics.isEmpty)
            }
        }
    }

    /// The trace fills the background decoder's ring three times over, so every slot is reused.
    @Test func backgroundDecodingFillsManyBatches() throws {
        let ringEvents = BackgroundDecoder.slotCapacity * BackgroundDecoder.slotCount
        let trace = RandomTrace(seed: 99, threadCount: 4, eventCount: ringEvents * 3)
        let (events, _) = try Self.events(of: trace.bytes, options: .init(thread: .background))
        #expect(events == trace.expected)
    }

    /// Damaged input must be read the same way on every path: the common-event loop leaves every event it
    /// does not fully understand to the general decoder, and the background thread decodes the same way.
    @Test func everyPathAgreesOnDamagedInput() throws {
        let original = RandomTrace(seed: 5, threadCount: 3, eventCount: 400).bytes
        var random = SplitMix64(seed: 0xBAD)
        for _ in 0..<600 {
            var bytes = original
            for _ in 0..<Int(random.next() % 6 + 1) {
                let index = 16 + Int(random.next() % UInt64(bytes.count - 16))
                bytes[index] = UInt8(truncatingIfNeeded: random.next())
            }
            guard let fast = try? Self.events(of: bytes, options: .init(thread: .caller, usesCommonEventLoop: true)),
                let general = try? Self.events(of: bytes, options: .init(thread: .caller, usesCommonEventLoop: false)),
                let background = try? Self.events(of: bytes, options: .init(thread: .background))
            else { continue }
            #expect(fast.events == general.events)
            #expect(fast.reader.diagnostics == general.reader.diagnostics)
            #expect(background.events == fast.events)
            #expect(background.reader.diagnostics == fast.reader.diagnostics)
        }
    }

    /// Reading a mapped file gives decoded pages back to the kernel (PageReleaser); pages read again
    /// must come back with the same bytes, whichever path reads them and however often.
    @Test func mappedFileReadsTheSameWhilePagesAreReleased() throws {
        let trace = RandomTrace(seed: 11, threadCount: 5, eventCount: 200_000)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pages-\(getpid()).mtrace").path
        try Data(trace.bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let reader = try TraceReader(path: path)
        for options in Self.allOptions {
            reader.decodingOptions = options
            #expect(MallocTraceFormatTests.events(of: reader) == trace.expected, "\(options)")
            #expect(reader.stacks == trace.stacks)
        }
    }

    struct Stop: Error {}

    /// A consumer that throws ends the background decoder (no hang) and the error reaches the caller;
    /// the reader can read the trace again afterwards.
    @Test func throwingConsumerStopsBackgroundDecoding() throws {
        let trace = RandomTrace(seed: 3, threadCount: 2, eventCount: BackgroundDecoder.slotCapacity * 6)
        let reader = try TraceReader(bytes: trace.bytes)
        reader.decodingOptions.thread = .background
        var batches = 0
        #expect(throws: Stop.self) {
            try reader.forEachEventBatch { (_: Span<AllocatorEvent>) throws(Stop) in
                batches += 1
                if batches == 2 { throw Stop() }
            }
        }
        #expect(batches == 2)
        #expect(MallocTraceFormatTests.events(of: reader) == trace.expected)
    }
}
