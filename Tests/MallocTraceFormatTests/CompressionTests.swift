import CMallocTraceFormat
import CZstd
import Testing

@testable import MallocTraceFormat

/// The trace with its chunks compressed, as `malloctrace compress --keep-addresses` writes it.
func compressed(_ bytes: [UInt8], level: Int = TraceCompressor.defaultLevel) throws -> [UInt8] {
    try rewritten(bytes) { input, write throws(TraceCompressor.Failure) in
        try TraceCompressor(level: level).compress(input, write: write)
    }
}

/// What a trace writer makes of `bytes`, in one piece.
func rewritten(
    _ bytes: [UInt8],
    by writer: (
        UnsafeRawBufferPointer, (UnsafeRawBufferPointer) throws(TraceCompressor.Failure) -> Void
    ) throws(TraceCompressor.Failure) -> Void
) throws -> [UInt8] {
    var output: [UInt8] = []
    try bytes.withUnsafeBytes { input in try writer(input) { output += $0 } }
    return output
}

/// A zstd frame of `bytes`; without `statingSize` the frame does not record its content size.
func zstdFrame(_ bytes: [UInt8], statingSize: Bool = true) -> [UInt8] {
    let context = ZSTD_createCCtx()
    defer { ZSTD_freeCCtx(context) }
    var output = [UInt8](repeating: 0, count: ZSTD_compressBound(bytes.count) + 64)
    let size = output.withUnsafeMutableBytes { out in
        bytes.withUnsafeBytes { input in
            _ = ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, statingSize ? 1 : 0)
            return ZSTD_compress2(context, out.baseAddress, out.count, input.baseAddress, input.count)
        }
    }
    return Array(output.prefix(size))
}

/// Compressed chunks (record flag MT_RECORD_FLAG_ZSTD) read exactly like the chunks they came from, and
/// their frames are untrusted input like everything else in a trace.
@Suite struct CompressionTests {
    static func compressedBuilder() -> TraceBuilder {
        TraceBuilder(version: UInt16(MT_FORMAT_VERSION), flags: MT_FILE_FLAG_ZSTD_CHUNKS.rawValue)
    }

    @Test(arguments: [1, 3, 40])
    func compressedTraceDeliversTheSameEvents(threadCount: Int) throws {
        for seed in UInt64(1)...6 {
            let trace = RandomTrace(seed: seed * 31 + UInt64(threadCount), threadCount: threadCount, eventCount: 3000)
            let packed = try compressed(trace.bytes)
            for options in DecodingPathTests.allOptions {
                let (events, reader) = try DecodingPathTests.events(of: packed, options: options)
                #expect(events == trace.expected, "seed \(seed), \(options)")
                #expect(reader.stacks == trace.stacks)
                #expect(reader.diagnostics.isEmpty)
                #expect(reader.formatVersion == 2 && reader.hasCompressedChunks)
            }
            let original = try TraceReader(bytes: trace.bytes)
            let reader = try TraceReader(bytes: packed)
            #expect(reader.process == original.process)
            #expect(reader.end == original.end)
            #expect(reader.threadIDs == original.threadIDs)
        }
    }

    /// A program's allocations repeat themselves (RandomTrace's random fields would not compress).
    @Test func compressedTraceIsSmaller() throws {
        var builder = TraceBuilder()
        builder.process()
        var stream = Events()
        for index in UInt64(0)..<20000 {
            stream.allocation(
                seq: 2 * index + 1, size: 16 + index % 7 * 8, at: 0x5555_0000 + index % 64 * 32, stack: index % 5)
            stream.free(seq: 2 * index + 2, at: 0x5555_0000 + index % 64 * 32)
        }
        builder.chunk(thread: 1, events: stream, slack: 100)
        builder.end()
        let packed = try compressed(builder.bytes)
        #expect(packed.count * 10 < builder.bytes.count, "\(builder.bytes.count) -> \(packed.count)")
        #expect(events(of: try TraceReader(bytes: packed)) == events(of: try TraceReader(bytes: builder.bytes)))
    }

    @Test func compressingTwiceIsRefused() throws {
        let packed = try compressed(RobustnessTests.sampleTrace())
        #expect(throws: TraceCompressor.Failure.alreadyCompressed) { try compressed(packed) }
        #expect(throws: TraceCompressor.Failure.self) { try compressed(Array("not a trace at all".utf8)) }
    }

    /// The zero fill of a killed writer goes, the missing END stays missing.
    @Test func truncatedTraceStaysTruncated() throws {
        var builder = TraceBuilder()
        builder.process()
        var stream = Events()
        stream.allocation(seq: 1, size: 10, at: 0x1000, stack: 0)
        builder.chunk(thread: 1, events: stream, slack: 4000)
        let raw = builder.bytes + [UInt8](repeating: 0, count: 1 << 16)
        let reader = try TraceReader(bytes: try compressed(raw))
        #expect(reader.isTruncated && !reader.isCutShort)
        #expect(events(of: reader).count == 1)
        #expect(try compressed(raw).count < 200)
    }

    @Test func everyTruncationPointOfACompressedTraceReadsAPrefix() throws {
        let full = try compressed(RobustnessTests.sampleTrace())
        let complete = events(of: try TraceReader(bytes: full)).count
        #expect(complete == 3 * 23)
        for length in 16..<full.count {
            let reader = try TraceReader(bytes: Array(full.prefix(length)))
            #expect(events(of: reader).count <= complete)
            #expect(reader.isTruncated, "length \(length)")
        }
    }

    @Test func randomCorruptionOfACompressedTraceNeverCrashes() throws {
        let original = try compressed(RobustnessTests.sampleTrace())
        let damaged = RobustnessTests.diagnosedDamage(of: original, seed: 0x2575)
        #expect(damaged > 1000)  // the checksum catches what the structure checks do not
    }

    /// The first events of a chunk, compressed by hand, with `used` and the frame given separately.
    private static func chunkTrace(used: UInt32, frame: [UInt8]) -> [UInt8] {
        var builder = compressedBuilder()
        var payload = Fields()
        payload.fixed(UInt32(7))
        payload.fixed(used)
        payload.bytes += frame
        builder.record(
            kind: MT_RECORD_CHUNK.rawValue, flags: UInt8(MT_RECORD_FLAG_ZSTD.rawValue), payload: payload.bytes)
        builder.end()
        return builder.bytes
    }

    private static func someEvents() -> [UInt8] {
        var stream = Events()
        stream.allocation(seq: 1, size: 10, at: 0x1000, stack: 0)
        stream.free(seq: 2, at: 0x1000)
        return stream.bytes
    }

    @Test func handMadeCompressedChunkReads() throws {
        let events = Self.someEvents()
        let reader = try TraceReader(bytes: Self.chunkTrace(used: UInt32(events.count), frame: zstdFrame(events)))
        #expect(MallocTraceFormatTests.events(of: reader).count == 2)
        #expect(reader.diagnostics.isEmpty)
    }

    @Test func chunkLargerThanTheLimitIsNotDecompressed() throws {
        let big = [UInt8](repeating: UInt8(MT_EVENT_TIME.rawValue), count: Int(MT_MAX_DECOMPRESSED_CHUNK) + 2)
        let reader = try TraceReader(bytes: Self.chunkTrace(used: UInt32(big.count), frame: zstdFrame(big)))
        #expect(events(of: reader).isEmpty)
        #expect(
            reader.diagnostics.map(\.message) == [
                "compressed chunk claims 4194306 bytes of events, more than the 4194304 a chunk may hold; chunk skipped"
            ])
    }

    @Test(arguments: [
        (false, 0, "the zstd frame does not state its size"),
        (true, 1, "the zstd frame holds 9 bytes but the chunk header says 10"),
        (true, -1, "the zstd frame holds 9 bytes but the chunk header says 8"),
    ])
    func frameMustStateTheChunksSize(statingSize: Bool, usedError: Int, message: String) throws {
        let events = Self.someEvents()
        #expect(events.count == 9)
        let frame = zstdFrame(events, statingSize: statingSize)
        let reader = try TraceReader(bytes: Self.chunkTrace(used: UInt32(events.count + usedError), frame: frame))
        #expect(MallocTraceFormatTests.events(of: reader).isEmpty)
        #expect(reader.diagnostics.map(\.message) == ["compressed chunk: \(message); chunk skipped"])
        #expect(reader.diagnostics.first?.offset == 16)
    }

    @Test func framesMustFillThePayloadExactly() throws {
        let events = Self.someEvents()
        let frame = zstdFrame(events)
        for (bytes, message) in [
            (frame + [0, 0, 0], "3 bytes follow the zstd frame"),
            (Array(frame.dropLast(2)), "the zstd frame is cut short or damaged"),
            ([1, 2, 3, 4, 5, 6], "the payload is not a zstd frame"),
        ] {
            let reader = try TraceReader(bytes: Self.chunkTrace(used: UInt32(events.count), frame: bytes))
            #expect(MallocTraceFormatTests.events(of: reader).isEmpty)
            #expect(reader.diagnostics.map(\.message) == ["compressed chunk: \(message); chunk skipped"])
        }
    }

    @Test func damagedEventsInADecompressedChunkNameTheRecord() throws {
        let events = Self.someEvents() + [0x7f]
        let reader = try TraceReader(bytes: Self.chunkTrace(used: UInt32(events.count), frame: zstdFrame(events)))
        #expect(MallocTraceFormatTests.events(of: reader).count == 2)
        #expect(
            reader.diagnostics == [
                TraceDiagnostic(
                    offset: 16,
                    message:
                        "unknown event opcode 0x7f at byte 9 of the compressed chunk's events; rest of this chunk skipped"
                )
            ])
    }

    /// Version 1 reserved the record flags: a version 1 file's flags are ignored, as before.
    @Test func recordFlagsMeanNothingWithoutTheFileFlag() throws {
        var builder = TraceBuilder(version: 1)
        var payload = Fields()
        payload.fixed(UInt32(7))
        payload.fixed(UInt32(Self.someEvents().count))
        payload.bytes += Self.someEvents()
        builder.record(
            kind: MT_RECORD_CHUNK.rawValue, flags: UInt8(MT_RECORD_FLAG_ZSTD.rawValue), payload: payload.bytes)
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(events(of: reader).count == 2)
        #expect(!reader.hasCompressedChunks)
    }

    @Test func unknownFileFlagsAreRejected() throws {
        let builder = TraceBuilder(version: UInt16(MT_FORMAT_VERSION), flags: 0x8000_0001)
        #expect(throws: TraceError.unsupportedFeatures(path: "<memory>", flags: 0x8000_0000)) {
            try TraceReader(bytes: builder.bytes)
        }
        let message = TraceError.unsupportedFeatures(path: "a.mtrace", flags: 0x8000_0000).description
        #expect(
            message
                == "a.mtrace uses trace features this malloctrace does not know (header flags 0x80000000); use a newer malloctrace"
        )
    }
}
