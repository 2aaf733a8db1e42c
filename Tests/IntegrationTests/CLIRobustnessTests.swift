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
        func varint(_ value: UInt64) -> [UInt8] {
            var value = value
            var bytes: [UInt8] = []
            while value >= 0x80 {
                bytes.append(UInt8(value & 0x7f) | 0x80)
                value >>= 7
            }
            return bytes + [UInt8(value)]
        }
        func little<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
        var data = Data("MTRACE\u{1a}\n".utf8)
        data.append(contentsOf: little(UInt16(1)) + little(UInt16(16)) + little(UInt32(0)))
        func record(_ kind: UInt8, _ payload: [UInt8]) {
            data.append(contentsOf: [kind, 0, 0, 0] + little(UInt32(payload.count)))
            data.append(contentsOf: payload)
            data.append(contentsOf: [UInt8](repeating: 0, count: (8 - payload.count % 8) % 8))
        }
        let exe = Array("/bin/crafted".utf8), argv = Array("crafted\0".utf8)
        var process = little(UInt32(4_000_000)) + little(UInt32(1)) + little(UInt64(0)) + little(UInt64(0))
        process += little(UInt32(4096)) + little(UInt32(64)) + little(UInt32(0)) + little(UInt32(exe.count))
        process += little(UInt32(argv.count)) + little(UInt32(0))
        record(1, process + exe + argv)
        var sequence = 0
        while sequence < count {
            let events = min(800_000, count - sequence)
            var chunk = little(UInt32(1)) + little(UInt32(0))
            chunk += [1] + varint(UInt64(sequence + 1)) + [16] + varint(UInt64(0x10000 + sequence * 16) << 1) + [0]
            chunk += Array(repeating: [1, 1, 16, 32, 0] as [UInt8], count: events - 1).flatMap { $0 }
            let used = UInt32(chunk.count - 8)
            chunk.replaceSubrange(4..<8, with: little(used))
            record(2, chunk)
            sequence += events
        }
        record(3, little(UInt64(1000)) + little(UInt64(sequence)) + little(Int32(-1)) + little(UInt32(0)))
        return data
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
