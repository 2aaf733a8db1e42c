import Foundation
import MallocTraceFormat
import MallocTraceReports
import MallocTraceSymbolication
import Testing

/// The stored analysis (index record) that `run` and `compress` append: a default report read from it is
/// byte for byte the report of a full pass, and an index that is damaged, stale, from another writer or
/// for other options is never used.
@Suite struct StoredAnalysisTests {
    static let cases: [(name: String, fixture: String, arguments: [String], options: [String])] = [
        ("leaks", "patterns", ["leaks"], []),
        ("threads", "patterns", ["threads"], []),
        ("temporary", "patterns", ["temporary"], []),
        ("all-functions", "patterns", ["all-functions"], []),
        ("leak-kinds", "leakkinds", ["chain"], ["--leak-kinds"]),
        ("sampling", "patterns", ["sampling"], ["--sample-rate", "4K"]),
        ("stl", "stl", [], []),
        ("pools", "api", ["pool"], []),
        ("pause", "api", ["pause"], []),
        ("marks", "api", ["marks"], []),
    ]

    /// The version `run` stamps its index with.
    static let writer: String = {
        (try? runProgram(Products.cli, ["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? "?"
    }()

    /// `report` (text and JSON) with and without `--no-index`, which must agree byte for byte.
    private func expectSameReports(_ trace: String, arguments: [String] = []) throws {
        for format in ["text", "json"] {
            let stored = try runProgram(Products.cli, ["report", trace, "--format", format] + arguments)
            let full = try runProgram(Products.cli, ["report", trace, "--format", format, "--no-index"] + arguments)
            #expect(stored.status == 0 && full.status == 0, "\(stored.stderr)\(full.stderr)")
            #expect(!stored.stdout.isEmpty)
            #expect(stored.stdout == full.stdout, "\(format) report of \(trace) differs from the full pass")
        }
    }

    private func origin(_ trace: String, options: ReportOptions = ReportOptions(), writer: String? = writer) throws
        -> Report.Origin
    {
        try Report.make(tracePath: trace, options: options, storedAnalysisWriter: writer).origin
    }

    @Test(arguments: cases.map(\.name))
    func defaultReportFromTheIndexIsTheFullPassReport(name: String) throws {
        let entry = try #require(Self.cases.first { $0.name == name })
        let scratch = try Scratch()
        let (run, trace) = try traceFixture(entry.fixture, entry.arguments, in: scratch, options: entry.options)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try TraceReader(path: trace).storedAnalysis().map { !$0.isEmpty } == .success(true))
        #expect(try origin(trace) == .storedAnalysis)
        try expectSameReports(trace)
    }

    @Test func everyFollowedChildGetsAnIndex() throws {
        let scratch = try Scratch()
        let run = try runProgram(
            Products.cli,
            [
                "run", "-o", scratch.path("t.%p.mtrace"), "--follow-children", "--", Products.fixture("processes"),
                "spawn", Products.fixture("patterns"),
            ])
        #expect(run.status == 0, "\(run.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path)
            .filter { $0.hasSuffix(".mtrace") }.map(scratch.path)
        #expect(files.count == 3)
        for file in files {
            #expect(try origin(file) == .storedAnalysis, "\(file)")
            try expectSameReports(file)
        }
    }

    @Test func compressStoresAnIndexForATraceRecordedWithoutRun() throws {
        let scratch = try Scratch()
        let trace = try traceProgram(Products.fixture("patterns"), ["leaks"], in: scratch)
        #expect(try origin(trace) == .events)
        let compress = try runProgram(Products.cli, ["compress", trace])
        #expect(compress.status == 0, "\(compress.stderr)")
        #expect(try origin(trace) == .storedAnalysis)
        try expectSameReports(trace)
    }

    @Test func otherOptionsAndOtherWritersReadTheEvents() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        #expect(try origin(trace) == .storedAnalysis)
        var from = ReportOptions()
        from.filters.from = 0
        #expect(try origin(trace, options: from) == .events)
        var top = ReportOptions()
        top.top = 3
        #expect(try origin(trace, options: top) == .events)
        var grouped = ReportOptions()
        grouped.grouping = .function
        #expect(try origin(trace, options: grouped) == .events)
        // The allocator's view is never stored: asking for it reads the events, and the panel is there.
        var allocator = ReportOptions()
        allocator.showsAllocator = true
        #expect(try origin(trace, options: allocator) == .events)
        let withPanel = try runProgram(Products.cli, ["report", trace, "--allocator", "--format", "json"])
        #expect(withPanel.status == 0 && withPanel.stdout.contains("\"allocator\""), "\(withPanel.stderr)")
        #expect(try origin(trace, writer: "0.0.0-other") == .events)
        #expect(try origin(trace, writer: nil) == .events)
        // The symbolizer is not part of the stored analysis: frames are resolved when reporting.
        var symbols = ReportOptions()
        symbols.symbolizer = .symbolTables
        #expect(try origin(trace, options: symbols) == .storedAnalysis)
        try expectSameReports(trace, arguments: ["--symbolizer", "none"])
        try expectSameReports(trace, arguments: ["--from", "0"])
    }

    /// The frames resolved when the analysis was stored are reused, by the default report and by reports
    /// with other options that fold frames the same way, only while the symbolizer and the files are the
    /// ones they were resolved with: a symbolizer that changed since resolves them again. `--no-index`
    /// never reuses them.
    @Test func storedFramesAreReusedOnlyWithTheSameSymbolizer() throws {
        let real = try #require(SymbolizerLocator.locate(environment: [:]).path)
        let scratch = try Scratch()
        let log = scratch.path("symbolizer.log")
        let wrapper = scratch.path("llvm-symbolizer")
        try "#!/bin/sh\necho started >> \(log)\nexec \(real) \"$@\"\n".write(
            toFile: wrapper, atomically: true, encoding: .utf8)
        #expect(chmod(wrapper, 0o755) == 0)
        let environment = ["MALLOCTRACE_SYMBOLIZER": wrapper]
        let (run, trace) = try traceFixture("patterns", ["leaks"], in: scratch, environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        func starts() -> Int {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        #expect(starts() == 1)  // `run` resolved the printed frames once
        let stored = try runProgram(Products.cli, ["report", trace], environment: environment)
        #expect(starts() == 1)
        let full = try runProgram(Products.cli, ["report", trace, "--no-index"], environment: environment)
        #expect(starts() == 2)
        #expect(stored.stdout == full.stdout && !stored.stdout.isEmpty)
        // A filtered report reads the events but takes the stored frames: every stack it prints has them.
        let filtered = try runProgram(Products.cli, ["report", trace, "--from", "0"], environment: environment)
        #expect(starts() == 2)
        let filteredFull = try runProgram(
            Products.cli, ["report", trace, "--from", "0", "--no-index"], environment: environment)
        #expect(starts() == 3)
        #expect(filtered.stdout == filteredFull.stdout && !filtered.stdout.isEmpty)
        // Frames folded another way are resolved again.
        let unfolded = try runProgram(
            Products.cli, ["report", trace, "--from", "0", "--keep-allocator-frames"], environment: environment)
        #expect(starts() == 4 && unfolded.status == 0)
        // Another symbolizer (the same script, rewritten): the stored frames are not used.
        try "#!/bin/sh\necho started >> \(log)\nexec \(real) \"$@\"\n\n".write(
            toFile: wrapper, atomically: true, encoding: .utf8)
        #expect(chmod(wrapper, 0o755) == 0)
        let again = try runProgram(Products.cli, ["report", trace], environment: environment)
        #expect(starts() == 5)
        #expect(again.stdout == full.stdout)
        let filteredAgain = try runProgram(Products.cli, ["report", trace, "--from", "0"], environment: environment)
        #expect(starts() == 6)
        #expect(filteredAgain.stdout == filteredFull.stdout)
    }

    /// Flips one byte at `offset` (counted from the end when negative).
    private func flipByte(in path: String, at offset: Int) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let index = offset >= 0 ? offset : bytes.count + offset
        bytes[index] ^= 0x5A
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func aDamagedIndexOrChangedEventsFallBackToTheEvents() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: trace)[.size] as? Int)
        let reader = try TraceReader(path: trace)
        #expect(reader.diagnostics.isEmpty)

        // Damaged stored analysis (its last bytes), a changed record before it (a byte of the PROCESS record's
        // start time, which is the first record), and an index cut short.
        let damaged = scratch.path("damaged.mtrace")
        try FileManager.default.copyItem(atPath: trace, toPath: damaged)
        try flipByte(in: damaged, at: -9)
        #expect(try TraceReader(path: damaged).storedAnalysis() == .failure(.payloadChecksumMismatch))
        #expect(try origin(damaged) == .events)
        try expectSameReports(damaged)

        let changed = scratch.path("changed.mtrace")
        try FileManager.default.copyItem(atPath: trace, toPath: changed)
        try flipByte(in: changed, at: 16 + 8 + 9)
        #expect(try TraceReader(path: changed).storedAnalysis() == .failure(.checksumMismatch))
        #expect(try origin(changed) == .events)
        try expectSameReports(changed)
        // A report that reads the events checks the stored frames against the stacks it read, not the checksum.
        #expect(try TraceReader(path: changed).storedAnalysis(checkingEvents: false).map(\.isEmpty) == .success(false))
        try expectSameReports(changed, arguments: ["--from", "0"])

        let cut = scratch.path("cut.mtrace")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: trace))
        try bytes.prefix(size - 16).write(to: URL(fileURLWithPath: cut))
        #expect(try TraceReader(path: cut).storedAnalysis() == .failure(.missing))
        #expect(try origin(cut) == .events)
        try expectSameReports(cut)

        // Events appended after the index: it no longer covers the file.
        let appended = scratch.path("appended.mtrace")
        var more = bytes
        more.append(contentsOf: [4, 0, 0, 0, 8, 0, 0, 0] + [UInt8](repeating: 0, count: 8))
        try more.write(to: URL(fileURLWithPath: appended))
        #expect(try TraceReader(path: appended).storedAnalysis() == .failure(.notLast))
        #expect(try origin(appended) == .events)
    }
}
