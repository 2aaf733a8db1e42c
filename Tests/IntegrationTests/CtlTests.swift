import Foundation
import Testing

/// A program under test that is driven line by line: stdin written to, stdout read with a time limit.
final class DrivenProcess {
    private let process = Process()
    private let input = Pipe(), output = Pipe(), errors = Pipe()
    private var buffered: [UInt8] = []

    init(_ path: String, _ arguments: [String], environment extra: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try withSignalsUnblocked { try process.run() }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    /// The next line on stdout, without its newline; nil after `timeout` seconds or at EOF.
    func line(timeout: Double = 30) -> String? {
        let descriptor = output.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(timeout)
        while !buffered.contains(UInt8(ascii: "\n")) {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(left * 1000)) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 256)
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return nil }
            buffered += chunk[..<count]
        }
        let end = buffered.firstIndex(of: UInt8(ascii: "\n")) ?? buffered.endIndex
        defer { buffered.removeSubrange(...end) }
        return String(decoding: buffered[..<end], as: UTF8.self)
    }

    func send(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }

    /// Closes stdin and waits for the exit status (killed after `timeout` seconds).
    func finish(timeout: Double = 60) -> (status: Int32, stderr: String) {
        try? input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
    }
}

/// `run --paused` and `malloctrace ctl`: switching a running multi-threaded process, and refusing other users.
@Suite struct CtlTests {
    private func ctl(_ arguments: [String], as user: String? = nil) throws -> ProcessResult {
        guard let user else { return try runProgram(Products.cli, ["ctl"] + arguments) }
        return try runProgram(
            "/usr/bin/setpriv",
            ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--", Products.cli, "ctl"] + arguments)
    }

    /// Waits for the fixture's "ready PID" line and returns the pid.
    private func readyPID(_ driven: DrivenProcess) throws -> Int32 {
        let ready = try #require(driven.line(), "the fixture did not start")
        return try #require(Int32(ready.dropFirst("ready ".count)), "\(ready)")
    }

    private func phase(_ driven: DrivenProcess, _ number: String) {
        driven.send(number)
        #expect(driven.line() == "done", "phase \(number)")
    }

    private func workFigures(_ trace: String, _ window: [String] = []) throws -> [String: Int] {
        let summary = try jsonReport(trace, arguments: ["--include", "work_"] + window).object("summary")
        let keys = [
            "allocation_calls", "free_calls", "bytes_allocated", "peak_bytes", "leaked_bytes", "leaked_blocks",
            "unmatched_frees",
        ]
        return Dictionary(uniqueKeysWithValues: keys.map { ($0, summary.integer($0) ?? -1) })
    }

    @Test func ctlStartsAndStopsARunningMultithreadedProcess() throws {
        let scratch = try Scratch()
        let trace = scratch.path("control.mtrace")
        let driven = try DrivenProcess(
            Products.cli, ["run", "--paused", "--no-compress", "-o", trace, "--", Products.fixture("control")])
        let pid = try readyPID(driven)
        let status = try ctl([String(pid), "status"])
        #expect(status.status == 0 && status.stdout == "\(pid): paused\n", "\(status.stdout)\(status.stderr)")
        let started = try ctl([String(pid), "start"])
        #expect(started.status == 0 && started.stdout == "\(pid): recording\n", "\(started.stdout)\(started.stderr)")
        phase(driven, "1")
        let mark = try ctl([String(pid), "mark", "after one"])
        #expect(mark.status == 0 && mark.stdout == "\(pid): mark after one\n", "\(mark.stdout)\(mark.stderr)")
        let snapshot = try ctl([String(pid), "snapshot", "one"])
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        phase(driven, "2")
        #expect(try ctl([String(pid), "mark", "after two"]).status == 0)
        #expect(try ctl([String(pid), "snapshot", "two"]).status == 0)
        let stopped = try ctl([String(pid), "stop"])
        #expect(stopped.status == 0 && stopped.stdout == "\(pid): paused\n", "\(stopped.stdout)\(stopped.stderr)")
        phase(driven, "3")
        let (exit, stderr) = driven.finish()
        #expect(exit == 0, "\(stderr)")
        // Exactly what the four threads did between start and stop (control.c's top comment): phase 3's calls
        // are not counted, but its frees still release the blocks recorded before the stop.
        #expect(
            try workFigures(trace) == [
                "allocation_calls": 6000, "free_calls": 4000, "bytes_allocated": 352_000, "peak_bytes": 192_000,
                "leaked_bytes": 80000, "leaked_blocks": 1000, "unmatched_frees": 0,
            ])
        // Marks bound a report exactly: phase 2 alone (its frees release blocks from before the window).
        #expect(
            try workFigures(trace, ["--from-mark", "after one", "--to-mark", "after two"]) == [
                "allocation_calls": 2000, "free_calls": 0, "bytes_allocated": 160_000, "peak_bytes": 160_000,
                "leaked_bytes": 160_000, "leaked_blocks": 2000, "unmatched_frees": 0,
            ])
        // Snapshots name the live sets after phases 1 and 2.
        let diff = try runProgram(Products.cli, ["diff", trace + "@one", trace + "@two", "--format", "json"])
        #expect(diff.status == 0, "\(diff.stderr)")
        let totals = try #require(try JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as? [String: Any])
            .object("summary")
        #expect(totals.object("before").integer("leaked_bytes") == 192_000, "\(totals)")
        #expect(totals.object("before").integer("leaked_blocks") == 4000)
        #expect(totals.object("after").integer("leaked_bytes") == 160_000)
        #expect(totals.object("after").integer("leaked_blocks") == 2000)
        // The socket goes with the process; a request now says so.
        #expect(!FileManager.default.fileExists(atPath: "/tmp/malloctrace-\(geteuid())/\(pid).sock"))
        let gone = try ctl([String(pid), "start"])
        #expect(gone.status != 0)
        #expect(gone.stderr.contains("\(pid)"), "\(gone.stderr)")
    }

    @Test func ctlFailsClearlyWithoutAControlSocket() throws {
        let scratch = try Scratch()
        let trace = scratch.path("plain.mtrace")
        let driven = try DrivenProcess(
            Products.cli, ["run", "--no-compress", "-o", trace, "--", Products.fixture("control")])
        let pid = try readyPID(driven)
        let result = try ctl([String(pid), "start"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("has no control socket"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(driven.finish().status == 0)
        let missing = try ctl(["999999999", "stop"])
        #expect(missing.status != 0 && missing.stderr.contains("no process"), "\(missing.stderr)")
    }

    /// A malformed control or clock variable is one `malloctrace:` line; the program runs as it would untraced.
    @Test(arguments: [
        ("MALLOCTRACE_START", "later", "MALLOCTRACE_START must be 'running' or 'paused', not 'later'"),
        ("MALLOCTRACE_CONTROL", "yes", "MALLOCTRACE_CONTROL must be 0 or 1, not 'yes'"),
        ("MALLOCTRACE_CONTROL_DIR", "relative", "MALLOCTRACE_CONTROL_DIR must be an absolute path"),
        ("MALLOCTRACE_CLOCK_EVERY", "0", "MALLOCTRACE_CLOCK_EVERY must be a whole number of events from 1 to 16"),
    ])
    func malformedVariablesTurnTracingOffWithOneLine(name: String, value: String, message: String) throws {
        let scratch = try Scratch()
        let trace = scratch.path("bad.mtrace")
        let result = try runProgram(
            Products.fixture("allocators"), [],
            environment: ["LD_PRELOAD": Products.preloadLibrary, "MALLOCTRACE_OUTPUT": trace, name: value])
        #expect(result.status == 0)
        #expect(result.stderr.hasPrefix("malloctrace: " + message), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: trace))
    }

    /// The target runs as `nobody`; root's request reaches the socket (root passes the directory's permissions)
    /// and is refused by the process; another ordinary user cannot even open the socket. Nothing is recorded.
    @Test(
        .enabled(
            if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
            "needs root and setpriv"))
    func ctlIsRefusedForAnotherUsersProcess() throws {
        let scratch = try Scratch()
        let shared = scratch.path("shared")
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        chmod(scratch.url.path, 0o755)
        chmod(shared, 0o777)
        let trace = shared + "/nobody.mtrace"
        // setpriv itself runs untraced (the library's thread would take part in its credential changes, see
        // docs/control.md); env, already running as nobody, preloads the library into the fixture.
        let driven = try DrivenProcess(
            "/usr/bin/setpriv",
            [
                "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "/usr/bin/env",
                "LD_PRELOAD=" + Products.preloadLibrary, "MALLOCTRACE_START=paused", "MALLOCTRACE_OUTPUT=" + trace,
                Products.fixture("control"),
            ])
        let pid = try readyPID(driven)

        let root = try ctl([String(pid), "start"])
        #expect(root.status == 1, "\(root.stdout)\(root.stderr)")
        #expect(
            root.stderr.contains("refused: this process accepts control requests only from its own user, uid 65534"),
            "\(root.stderr)")
        #expect(root.stderr.split(separator: "\n").count == 1, "\(root.stderr)")

        let other = try ctl([String(pid), "start"], as: "daemon")
        #expect(other.status == 1, "\(other.stdout)\(other.stderr)")
        #expect(other.stderr.contains("refused"), "\(other.stderr)")

        phase(driven, "1")
        #expect(driven.finish().status == 0)
        let figures = try workFigures(trace)
        #expect(figures["allocation_calls"] == 0, "\(figures)")
    }
}
