import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

/// Traces are untrusted input: no byte sequence may crash or hang the reader.
@Suite struct RobustnessTests {
    static func sampleTrace() -> [UInt8] {
        var builder = TraceBuilder()
        builder.process()
        for thread in UInt32(1)...3 {
            var stream = Events()
            stream.time(UInt64(thread) * 1000)
            stream.stack(UInt64(thread), [0x40_0000 + UInt64(thread), 0x40_1000, 0x7fff_0000_0000])
            stream.module(
                id: UInt64(thread), bias: 0x40_0000, segments: [(0x40_0000, 0x1000)], buildID: [1], path: "/m")
            for index in UInt64(0)..<20 {
                let seq = index * 3 + UInt64(thread)
                stream.allocation(
                    seq: seq, size: index + 1, at: 0x1000 * UInt64(thread) + index * 16, stack: UInt64(thread))
            }
            stream.realloc(
                before: 100 + UInt64(thread) * 2, after: 101 + UInt64(thread) * 2, size: 64,
                from: 0x1000 * UInt64(thread), to: 0x9_0000 + UInt64(thread), stack: UInt64(thread))
            stream.free(seq: 120 + UInt64(thread), at: 0x9_0000 + UInt64(thread))
            builder.chunk(thread: thread, events: stream, slack: 8)
        }
        builder.end()
        return builder.bytes
    }

    @Test func everyTruncationPointReadsAPrefix() throws {
        let full = Self.sampleTrace()
        let complete = events(of: try TraceReader(bytes: full)).count
        #expect(complete == 3 * 23)
        var previousCount = 0
        for length in 16...full.count {
            let reader = try TraceReader(bytes: Array(full.prefix(length)))
            let count = events(of: reader).count
            #expect(count <= complete)
            if length < full.count - 32 { #expect(reader.isTruncated, "length \(length)") }
            previousCount = count
        }
        #expect(previousCount == complete)
    }

    @Test func randomCorruptionNeverCrashes() throws {
        let original = Self.sampleTrace()
        var generator = SplitMix64(seed: 0x5EED)
        for _ in 0..<3000 {
            guard let reader = try? TraceReader(bytes: Self.damaged(original, using: &generator)) else { continue }
            _ = events(of: reader)
        }
    }

    /// Reads 3000 randomly damaged copies of `original` to the end (none may crash) and returns how many gave
    /// diagnostics.
    static func diagnosedDamage(of original: [UInt8], seed: UInt64) -> Int {
        var generator = SplitMix64(seed: seed)
        var diagnosed = 0
        for _ in 0..<3000 {
            let bytes = damaged(original, using: &generator)
            guard let reader = try? TraceReader(bytes: bytes) else { continue }
            _ = events(of: reader)
            if !reader.diagnostics.isEmpty { diagnosed += 1 }
        }
        return diagnosed
    }

    /// `bytes` with 1 to 8 random bytes after the file header overwritten with random values.
    static func damaged(_ bytes: [UInt8], using generator: inout SplitMix64) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<Int(generator.next() % 8 + 1) {
            let index = 16 + Int(generator.next() % UInt64(bytes.count - 16))
            bytes[index] = UInt8(truncatingIfNeeded: generator.next())
        }
        return bytes
    }

    @Test func hugeCountsDoNotAllocate() throws {
        var stream = Events()
        stream.raw([UInt8(MT_EVENT_STACK.rawValue), 1, 0xff, 0xff, 0xff, 0xff, 0x0f])  // 4 billion frames
        var builder = TraceBuilder()
        builder.chunk(thread: 1, events: stream)
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(events(of: reader).isEmpty)
        #expect(reader.diagnostics.count == 1)
    }

    @Test func usedLargerThanChunkIsClamped() throws {
        var stream = Events()
        stream.allocation(seq: 1, size: 8, at: 0x10, stack: 0)
        var builder = TraceBuilder()
        builder.chunk(thread: 1, events: stream, usedOverride: 0xFFFF_FFFF)
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(events(of: reader).count == 1)
    }

    /// A module path longer than PATH_MAX (a few KB of zstd can hold megabytes) is refused where it is read:
    /// reports matched every frame's path against their patterns, and took minutes.
    @Test func overlongModulePathIsRejected() throws {
        var stream = Events()
        stream.module(
            id: 1, bias: 0, segments: [(0x1000, 0x1000)], buildID: [],
            path: "/lib/" + String(repeating: "a/", count: 2100))
        stream.module(
            id: 2, bias: 0, segments: [(0x3000, 0x1000)], buildID: [],
            path: "/lib/" + String(repeating: "b", count: 4091))
        var builder = TraceBuilder()
        builder.chunk(thread: 1, events: stream)
        let reader = try TraceReader(bytes: builder.bytes)
        _ = events(of: reader)
        #expect(reader.diagnostics.first?.message.contains("a path of 4205 bytes") == true, "\(reader.diagnostics)")
        #expect(reader.modules.allSatisfy { $0.path.utf8.count <= 4096 })
    }

    @Test func controlCharactersAreWrittenOut() {
        #expect("plain name (pid 3)".escapingControlCharacters == "plain name (pid 3)")
        #expect(
            "a\nb\r\n::error x\t\u{1B}[2J\u{7F}\u{85}é".escapingControlCharacters
                == "a\\nb\\r\\n::error x\\t\\u{1B}[2J\\u{7F}\\u{85}é")
    }

    @Test func overlongVarintIsRejected() throws {
        var stream = Events()
        stream.raw([UInt8(MT_EVENT_TIME.rawValue)] + [UInt8](repeating: 0xff, count: 11) + [0x01])
        var builder = TraceBuilder()
        builder.chunk(thread: 1, events: stream)
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(events(of: reader).isEmpty)
        #expect(reader.diagnostics.first?.message.contains("varint") == true)
    }
}

/// Deterministic pseudo-random numbers, so a failing corruption case can be replayed.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
