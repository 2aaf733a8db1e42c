import Foundation
import Testing

/// `malloctrace run` compresses its traces once the target has exited and `malloctrace compress` does it
/// for traces recorded without the CLI; either way `report` must say exactly what the raw trace says.
@Suite struct CompressionTests {
    /// The header's version (1: as the library wrote it; 2 with flag 1: compressed chunks; 3 with flags 9:
    /// compressed chunks of keyed events).
    private func formatVersion(_ path: String) throws -> (version: UInt16, flags: UInt32) {
        let header = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)).prefix(16))
        return (UInt16(header[8]) | UInt16(header[9]) << 8, header[12...].reversed().reduce(0) { $0 << 8 | UInt32($1) })
    }

    private func fileSize(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? -1
    }

    /// The report without the line that names the file.
    private func report(_ path: String) throws -> [String: Any] {
        var report = try jsonReport(path, top: 50)
        var trace = report.object("trace")
        trace["path"] = nil
        report["trace"] = trace
        return report
    }

    /// Version 3 (keyed blocks) and version 2 (`--keep-addresses`) of the same raw trace give the raw trace's
    /// report field by field (JSON, top 50): fixtures with realloc in every form, failed calls, frees of blocks
    /// allocated before tracing, threads freeing each other's blocks, leak kinds, pools and pauses.
    @Test(arguments: [
        ("patterns", ["leaks"], []), ("patterns", ["peak"], []), ("patterns", ["threads"], []),
        ("patterns", ["all-functions"], []), ("patterns", ["grow"], []), ("stress", [], []), ("semantics", [], []),
        ("leakkinds", ["chain"], ["--leak-kinds"]), ("leakkinds", ["global"], ["--leak-kinds"]),
        ("api", ["pause"], []), ("api", ["marks"], []), ("api", ["threads"], []),
    ])
    func compressedTraceGivesTheSameReport(fixture: String, arguments: [String], options: [String]) throws {
        let scratch = try Scratch()
        let raw = scratch.path("raw.mtrace")
        let run = try runProgram(
            Products.cli,
            ["run", "--no-compress", "-o", raw] + options + ["--", Products.fixture(fixture)] + arguments)
        #expect(run.signal == nil, "\(run.stderr)")
        #expect(try formatVersion(raw) == (1, 0))
        let rawReport = try report(raw)
        for (option, version) in [(nil, (UInt16(3), UInt32(9))), ("--keep-addresses", (2, 1))] {
            let packed = scratch.path("packed\(version.0).mtrace")
            try FileManager.default.copyItem(atPath: raw, toPath: packed)
            let compress = try runProgram(Products.cli, ["compress", packed] + (option.map { [$0] } ?? []))
            #expect(compress.status == 0)
            #expect(compress.stderr.hasPrefix("malloctrace: compressed \(packed): "))
            #expect(!compress.stderr.contains("kept in format version 2"), "\(compress.stderr)")
            #expect(try formatVersion(packed) == version)
            #expect(try fileSize(packed) < fileSize(raw))
            let attributes = try FileManager.default.attributesOfItem(atPath: packed)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            let same = NSDictionary(dictionary: rawReport).isEqual(to: try report(packed))
            #expect(same, "the reports of \(fixture) \(arguments) differ in version \(version.0)")
        }
    }

    /// A pool that claims a heap block (malloctrace_pool_backing) names it by its address, which version 3 does
    /// not keep: such a trace is written as version 2, with a line that says so, and reads the same.
    @Test func poolsThatClaimHeapBlocksKeepAddresses() throws {
        let scratch = try Scratch()
        let raw = scratch.path("raw.mtrace")
        let run = try runProgram(
            Products.cli, ["run", "--no-compress", "-o", raw, "--", Products.fixture("api"), "pool"])
        #expect(run.signal == nil, "\(run.stderr)")
        let packed = scratch.path("packed.mtrace")
        try FileManager.default.copyItem(atPath: raw, toPath: packed)
        let compress = try runProgram(Products.cli, ["compress", packed])
        #expect(compress.status == 0)
        #expect(
            compress.stderr.hasSuffix(
                "; kept in format version 2: a pool claims heap blocks (malloctrace_pool_backing)\n"),
            "\(compress.stderr)")
        #expect(try formatVersion(packed) == (2, 1))
        #expect(NSDictionary(dictionary: try report(raw)).isEqual(to: try report(packed)))
    }

    @Test func runCompressesUnlessToldNotTo() throws {
        let scratch = try Scratch()
        var figures: [[Int?]] = []
        for option in ["--no-compress", nil] {
            let trace = scratch.path("t-\(option ?? "default").mtrace")
            let run = try runProgram(
                Products.cli,
                ["run", "-o", trace] + (option.map { [$0] } ?? []) + ["--", Products.fixture("patterns"), "leaks"])
            #expect(run.status == 0)
            #expect(run.stderr.split(separator: "\n").count == 4, "\(run.stderr)")
            #expect(try formatVersion(trace) == (option == nil ? (3, 9) : (1, 0)))
            let summary = try jsonReport(trace).object("summary")
            figures.append(
                ["allocation_calls", "free_calls", "bytes_allocated", "leaked_bytes", "leaked_blocks", "peak_bytes"]
                    .map(summary.integer))
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).allSatisfy { !$0.hasPrefix(".") })
        }
        #expect(figures[0] == figures[1])
        #expect(figures[0] == [5017, 5000, figures[0][2], 1030, 17, 1030])
    }

    @Test func childTracesAreCompressedToo() throws {
        let scratch = try Scratch()
        let run = try runProgram(
            Products.cli,
            [
                "run", "-o", scratch.path("t.%p.mtrace"), "--follow-children", "--", Products.fixture("processes"),
                "spawn",
                Products.fixture("patterns"),
            ])
        #expect(run.status == 0, "\(run.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path)
        #expect(files.count == 3, "\(files)")
        for file in files { #expect(try formatVersion(scratch.path(file)) == (3, 9), "\(file)") }
    }

    /// The target makes the trace's directory read-only before it exits, so the CLI cannot create the
    /// compressed file next to the trace: the raw trace stays, with one line saying why. Root may write
    /// anywhere, so as root the CLI runs as `nobody`.
    @Test(.enabled(if: geteuid() != 0 || canRunCLIAsNobody, "root without setpriv, or .build not readable by nobody"))
    func failedRewriteKeepsTheRawTrace() throws {
        let scratch = try Scratch()
        let manager = FileManager.default
        try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.url.path)
        let directory = scratch.path("traces")
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: false)
        if geteuid() == 0 {
            try manager.setAttributes([.ownerAccountID: 65534, .groupOwnerAccountID: 65534], ofItemAtPath: directory)
        }
        let trace = directory + "/t.mtrace"
        let command = [
            Products.cli, "run", "-o", trace, "--", "/bin/sh", "-c", "\"$1\" leaks >/dev/null && chmod 555 \"$2\"",
            "sh",
            Products.fixture("patterns"), directory,
        ]
        let wrapper = geteuid() == 0 ? asNobody : []
        let run = try runProgram((wrapper + command)[0], Array((wrapper + command).dropFirst()))
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stderr.split(separator: "\n")
        #expect(
            lines.filter { $0.contains("uncompressed") } == [
                "malloctrace: kept \(trace) uncompressed: cannot create a temporary file in \(directory): Permission denied"
            ])
        #expect(lines.count == 5)
        #expect(try manager.contentsOfDirectory(atPath: directory) == ["t.mtrace"])
        #expect(try formatVersion(trace) == (1, 0))
        try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
    }

    @Test func compressCommandExplainsWhatItDid() throws {
        let scratch = try Scratch()
        let trace = try traceProgram(Products.fixture("patterns"), ["leaks"], in: scratch)
        let other = scratch.path("not-a-trace.mtrace")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: other))
        let first = try runProgram(Products.cli, ["compress", trace, other])
        #expect(first.status == 1)
        let lines = first.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first?.hasPrefix("malloctrace: compressed \(trace): ") == true)
        #expect(
            lines.last == "malloctrace: cannot compress \(other): it is not a malloctrace trace; it is left as it was")
        #expect(try String(contentsOfFile: other, encoding: .utf8) == "hello")
        let again = try runProgram(Products.cli, ["compress", trace])
        #expect(again.status == 0)
        #expect(again.stderr == "malloctrace: \(trace) is already compressed\n")
        let help = try runProgram(Products.cli, ["compress", "--help"])
        #expect(help.stdout.contains("LD_PRELOAD"))
        #expect(help.stdout.contains("--level"))
    }
}

private let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

private let canRunCLIAsNobody: Bool = {
    let result = try? runProgram(
        asNobody[0], Array(asNobody.dropFirst()) + [Products.cli, "preload-path"], timeout: 10)
    return result?.status == 0
}()
