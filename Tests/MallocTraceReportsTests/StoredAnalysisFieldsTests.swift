import MallocTraceAnalysis
import MallocTraceFormat
import MallocTraceSymbolication
import Testing

@testable import MallocTraceReports

/// The stored analysis (StoredAnalysis.swift) encodes every stored property of the values below by name. A
/// property added to one of them would be left out of the index silently, and a report from the index would
/// then differ from the full pass: this fails first. When it does, encode the new property in
/// StoredAnalysis.encode/decode, bump ``StoredAnalysis/layoutVersion``, and update the list here.
@Suite struct StoredAnalysisFieldsTests {
    private func names(_ value: Any) -> [String] { Mirror(reflecting: value).children.compactMap(\.label) }

    /// The report of an empty trace (a file header and nothing else).
    private func emptyReport() throws -> Report {
        let header: [UInt8] = Array("MTRACE\u{1a}\n".utf8) + [1, 0, 16, 0, 0, 0, 0, 0]
        let reader = try TraceReader(bytes: header)
        let pass = TracePass.run(reader: reader, filters: ReportFilters(), temporaryThreshold: 0, symbolizer: nil)
        return Report(pass: pass, options: ReportOptions(), symbolizer: Symbolizer(backend: .symbolTables))
    }

    @Test func everyStoredFieldIsKnown() throws {
        #expect(
            names(try emptyReport()) == [
                "tracePath", "process", "end", "isTruncated", "diagnostics", "options", "summary",
                "temporaryAllocations", "temporaryBytes", "sites", "histogram", "threads", "leakSiteCount",
                "groupCount", "symbolization", "sampling", "leakScan", "leakKinds", "processMemory",
                // `allocator` is never stored: `report --allocator` is not a default report, so the stamp sends
                // it to the events (StoredAnalysis.stamp).
                "residentSamples", "allocator", "pools", "marks", "origin",
            ])
        #expect(
            names(HeapSummary()) == [
                "allocationCalls", "failedCalls", "freeCalls", "callsByFunction", "bytesAllocated", "peakBytes",
                "peakBlocks", "peakTime", "leakedBytes", "leakedBlocks", "unmatchedFrees", "ignoredFrees",
                "lastEventTime", "threadCount",
            ])
        #expect(
            names(SiteFigures()) == [
                "allocationCalls", "bytesAllocated", "peakBytes", "peakBlocks", "leakedBytes", "leakedBlocks",
                "temporaryAllocations", "temporaryBytes", "leakKinds", "function",
            ])
        #expect(
            names(ReportFrame(address: 0, module: nil, offset: nil)) == [
                "address", "module", "offset", "function", "file", "line", "isInlined", "problem", "isPoolFrame",
            ])
        #expect(
            names(Module(id: 0, path: "", loadBias: 0, segments: [], buildID: [])) == [
                "id", "path", "loadBias", "segments", "buildID", "isUnloaded", "poolName", "loadedAt", "unloadedAt",
            ])
        #expect(
            names(TraceMark(kind: .mark, name: "", sequence: 0, time: 0, threadID: 0)) == [
                "kind", "name", "sequence", "time", "threadID",
            ])
    }

    /// A stored analysis is read from an untrusted file: cut short or with any byte changed, it decodes to a
    /// value or to nothing, never to a trap.
    @Test func damagedPayloadsNeverTrap() throws {
        let header: [UInt8] = Array("MTRACE\u{1a}\n".utf8) + [1, 0, 16, 0, 0, 0, 0, 0]
        let reader = try TraceReader(bytes: header)
        let pass = TracePass.run(reader: reader, filters: ReportFilters(), temporaryThreshold: 0, symbolizer: nil)
        let presenter = StackPresenter(reader: reader, symbolizer: nil, keepsAllocatorFrames: false)
        var digest = ReportDigest(pass: pass, options: ReportOptions(), presenter: presenter)
        var frame = ReportFrame(address: 0x1234, module: "/lib/x.so", offset: 0x34)
        frame.function = "f"
        frame.line = -3
        digest.frames = StoredFrames(fingerprint: "inputs", byStack: [7: [frame]])
        digest.stacks = [7: [0x1234, 0x5678]]
        let payload = StoredAnalysis.encode(digest, options: ReportOptions(), writer: "w")
        #expect(StoredAnalysis.decode(payload, options: ReportOptions(), writer: "w") == digest)
        #expect(StoredAnalysis.decode(payload, options: ReportOptions(), writer: "v") == nil)
        // Figures no pass could give (the renderers add and multiply some) make the index unusable.
        var huge = digest
        huge.summary.allocationCalls = 1 << 60
        #expect(
            StoredAnalysis.decode(
                StoredAnalysis.encode(huge, options: ReportOptions(), writer: "w"), options: ReportOptions(),
                writer: "w") == nil)
        var sampled = digest
        sampled.sampling = SampleEstimator(rate: 512, samples: 1, estimatedAllocationCalls: .nan)
        #expect(
            StoredAnalysis.decode(
                StoredAnalysis.encode(sampled, options: ReportOptions(), writer: "w"), options: ReportOptions(),
                writer: "w") == nil)
        for length in 0..<payload.count {
            #expect(StoredAnalysis.decode(Array(payload.prefix(length)), options: ReportOptions(), writer: "w") == nil)
        }
        for index in payload.indices {
            for value: UInt8 in [0x00, 0x7F, 0x80, 0xFF] {
                var changed = payload
                changed[index] = value
                _ = StoredAnalysis.decode(changed, options: ReportOptions(), writer: "w")
            }
        }
    }
}
