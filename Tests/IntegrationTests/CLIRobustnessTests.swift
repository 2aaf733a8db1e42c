import Foundation
import Testing

/// The CLI never traps, never hangs and never hides a failed write, whatever its descriptors and inputs.
@Suite struct CLIRobustnessTests {
    /// Runs the CLI through a shell that redirects or closes its standard descriptors first.
    private func cli(_ arguments: [String], redirections: String) throws -> ProcessResult {
        try runProgram("/bin/sh", ["-c", "exec \"$0\" \"$@\" \(redirections)", Products.cli] + arguments, timeout: 60)
    }

    @Test func runSurvivesStandardErrorOnAFullDisk() throws {
        let scratch = try Scratch()
        let result = try cli(
            ["run", "-o", scratch.path("t.mtrace"), "--", Products.fixture("patterns"), "exit"],
            redirections: "2>/dev/full")
        #expect(result.signal == nil)
        #expect(result.status == 3, "the target's _exit(3) status, not a trap")
    }

    @Test func runSurvivesClosedStandardDescriptors() throws {
        let scratch = try Scratch()
        let result = try cli(
            ["run", "-o", scratch.path("t.mtrace"), "--", Products.fixture("patterns"), "leaks"],
            redirections: "<&- >&- 2>&-")
        #expect(result.signal == nil)
        #expect(result.status == 0)
        #expect(FileManager.default.fileExists(atPath: scratch.path("t.mtrace")))
    }

    /// Found by tools/fuzz/fuzz-cli.py: check's notes went through FileHandle.write, which traps (SIGILL)
    /// when standard error is full or closed.
    @Test func checkSurvivesStandardErrorOnAFullDisk() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let arguments = ["check", "--process", "no-such-program", trace]
        let plain = try cli(arguments, redirections: "")
        #expect(plain.stderr.contains("judged 0 of 1 processes"))
        for redirections in ["2>/dev/full", "2>&-"] {
            let result = try cli(arguments, redirections: redirections)
            #expect(result.signal == nil, "\(redirections): killed by signal \(result.signal ?? 0)")
            #expect(result.status == plain.status, "\(redirections): the verdict's status, not a trap")
        }
    }

    /// Found by tools/fuzz/fuzz-cli.py: a threshold of 2^31 made report and diff abort on a 51 GB allocation.
    @Test func aHugeTemporaryThresholdIsRefused() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        for command in [["report", trace], ["diff", trace, trace]] {
            for value in ["2147483648", "9223372036854775807", "65537"] {
                let result = try runProgram(Products.cli, command + ["--temporary-threshold", value], timeout: 60)
                #expect(result.signal == nil, "\(command[0]) \(value): killed by signal \(result.signal ?? 0)")
                #expect(result.status == 64, "\(command[0]) \(value): a usage error")
                #expect(result.stderr.contains("--temporary-threshold must be 0 to 65536"))
            }
            let largest = try runProgram(Products.cli, command + ["--temporary-threshold", "65536"], timeout: 60)
            #expect(largest.status == 0, "\(command[0]): the largest threshold is accepted")
        }
    }

    @Test func aStartTimeBeyondEveryEventSelectsNothing() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let report = try jsonReport(trace, arguments: ["--from", "1e11"])
        #expect(report.object("summary").integer("allocation_calls") == 0)
    }

    @Test func aFIFOIsRefusedAtOnce() throws {
        let scratch = try Scratch()
        let fifo = scratch.path("pipe.mtrace")
        #expect(mkfifo(fifo, 0o600) == 0)
        let result = try runProgram(Products.cli, ["report", fifo], timeout: 20)
        #expect(result.signal == nil, "killed by the timeout: report waited for a writer")
        #expect(result.status == 1)
        #expect(result.stderr.contains("not a regular file"))
    }

    @Test func aReportThatCannotBeWrittenFails() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        var device = stat()
        try #require(stat("/dev/full", &device) == 0 && (device.st_mode & S_IFMT) == S_IFCHR, "/dev/full is no device")
        for format in ["text", "json"] {
            let result = try cli(["report", trace, "--format", format], redirections: ">/dev/full")
            #expect(result.status == 1, "\(format): exit status \(result.status)")
            #expect(result.stderr.contains("cannot write to standard output: No space left on device"))
        }
    }
}

/// A trace whose events keep millions of blocks live: running out of memory ends in one clear line.
@Suite struct OutOfMemoryTests {
    /// A version 1 trace of `count` live 16-byte mallocs (5 bytes each: seq +1, size 16, pointer +16, no
    /// stack), in chunks of 800,000 events, from a process id that cannot be running.
    static func manyLiveBlocks(_ count: Int) -> Data {
        var trace = CraftedTrace()
        var sequence = 0
        while sequence < count {
            let events = min(800_000, count - sequence)
            var chunk = [1] + CraftedTrace.varint(UInt64(sequence + 1)) + [16]
            chunk += CraftedTrace.varint(UInt64(0x10000 + sequence * 16) << 1) + [0]
            chunk += Array(repeating: [1, 1, 16, 32, 0] as [UInt8], count: events - 1).flatMap { $0 }
            trace.chunk(thread: 1, events: chunk)
            sequence += events
        }
        trace.end(time: 1000, lastSequence: UInt64(sequence))
        return trace.data
    }

    /// Figures near 2^64 (a block of 2^64 − 1 bytes, a clock at 2^64 − 1, an end at 2^64 − 1) in the HTML charts:
    /// their Doubles round up to 2^64, which no UInt64 holds, and the chart trapped converting them back.
    @Test func htmlChartsTakeFiguresNear2To64() throws {
        let scratch = try Scratch()
        let huge = UInt64.max
        let cases: [(name: String, events: [UInt8], end: UInt64)] = [
            ("size", [1, 1] + CraftedTrace.varint(huge) + CraftedTrace.varint(0x10000 << 1) + [0], 1000),
            ("time", [0x11] + CraftedTrace.varint(huge) + [1, 1, 16] + CraftedTrace.varint(0x10000 << 1) + [0], 1000),
            ("end", [1, 1, 16] + CraftedTrace.varint(0x10000 << 1) + [0], huge),
        ]
        for crafted in cases {
            var trace = CraftedTrace()
            trace.chunk(thread: 1, events: crafted.events)
            trace.end(time: crafted.end, lastSequence: 1)
            let path = scratch.path("\(crafted.name).mtrace")
            try trace.data.write(to: URL(fileURLWithPath: path))
            for options in [[], ["--allocator"]] {
                let html = scratch.path("\(crafted.name).html")
                let result = try runProgram(
                    Products.cli, ["report", path, "--format", "html", "-o", html, "--symbolizer", "none"] + options)
                #expect(result.signal == nil && result.status == 0, "\(crafted.name) \(options): \(result.stderr)")
                #expect(try String(contentsOfFile: html, encoding: .utf8).contains("Heap in use over time"))
            }
        }
    }

    /// A traced program's names are untrusted text: a newline in its arguments must not start a line of
    /// `check`'s output (GitHub Actions reads a line starting `::` as a workflow command) or of an error.
    @Test func namesFromTheTraceStayOnTheirLine() throws {
        let scratch = try Scratch()
        var trace = CraftedTrace(arguments: ["a\nb", "\n::error file=x::pwned\n::set-output name=x::y"])
        trace.chunk(thread: 1, events: [1, 1, 16] + CraftedTrace.varint(0x10000 << 1) + [0])
        trace.end(time: 1000, lastSequence: 1)
        let path = scratch.path("names.mtrace")
        try trace.data.write(to: URL(fileURLWithPath: path))
        let check = try runProgram(Products.cli, ["check", "--github", "--symbolizer", "none", path])
        #expect(check.status == 23, "\(check.stderr)")
        let lines = (check.stdout + check.stderr).split(separator: "\n")
        #expect(!lines.contains { $0.hasPrefix("::error file=x") || $0.hasPrefix("::set-output") }, "\(lines)")
        #expect(check.stdout.contains("a\\nb \\n::error file=x::pwned\\n::set-output name=x::y"), "\(check.stdout)")
        let report = try runProgram(Products.cli, ["report", path, "--symbolizer", "none"])
        #expect(report.status == 0 && report.stdout.contains("a\\nb"), "\(report.stdout)")
    }

    /// The job summary is extra: a `$GITHUB_STEP_SUMMARY` that cannot be written is said on stderr, and the
    /// verdict's status stands (it was 1, an undocumented status, instead of 23).
    @Test func anUnwritableJobSummaryKeepsTheVerdict() throws {
        let scratch = try Scratch()
        var trace = CraftedTrace()
        trace.chunk(thread: 1, events: [1, 1, 16] + CraftedTrace.varint(0x10000 << 1) + [0])
        trace.end(time: 1000, lastSequence: 1)
        let path = scratch.path("leak.mtrace")
        try trace.data.write(to: URL(fileURLWithPath: path))
        let result = try runProgram(
            Products.cli, ["check", "--github", "--symbolizer", "none", path],
            environment: ["GITHUB_STEP_SUMMARY": scratch.path("missing/summary.md")])
        #expect(result.status == 23, "\(result.stderr)")
        #expect(result.stderr.contains("no job summary"), "\(result.stderr)")
        #expect(result.stdout.contains("::error"))
    }

    @Test func tooManyLiveBlocksEndInOneLine() throws {
        let scratch = try Scratch()
        let trace = scratch.path("many.mtrace")
        try Self.manyLiveBlocks(8_000_000).write(to: URL(fileURLWithPath: trace))
        // 8 M live blocks take about 320 MB of table while it grows (16-byte entries, old and new table), more
        // than 300 MB of address space leaves after the CLI's own (about 150 MB suffice for a small trace).
        let result = try runProgram(
            "/bin/sh", ["-c", "ulimit -v 300000; exec \"$0\" report \"$1\" --sections summary", Products.cli, trace],
            timeout: 120)
        #expect(result.signal == nil, "a trap, not an error: \(result.stderr)")
        #expect(result.status == 70)
        #expect(result.stderr.hasPrefix("malloctrace: out of memory: the table of "), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }
}
