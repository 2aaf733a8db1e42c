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
        for format in ["text", "json"] {
            let result = try cli(["report", trace, "--format", format], redirections: ">/dev/full")
            #expect(result.status == 1, "\(format): exit status \(result.status)")
            #expect(result.stderr.contains("cannot write to standard output: No space left on device"))
        }
    }
}
