import Foundation
import Testing

/// How a trace ends when the target ends unusually. Expected exit statuses: _exit(3) → 3, abort → 128+6,
/// SIGSEGV → 128+11, SIGKILL of the target → the trace is cut where it was.
@Suite(.serialized) struct ProcessEndTests {
    private func expectThreeLiveBlocks(_ report: [String: Any]) {
        let leaks = report.objects("leaks")
        #expect(leaks.first.map(topFunction) == "block_before_end")
        #expect(leaks.first?.integer("bytes") == 192)
        #expect(leaks.first?.integer("blocks") == 3)
    }

    @Test func underscoreExitClosesTheTrace() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["exit"], in: scratch)
        #expect(run.status == 3)
        let report = try jsonReport(trace)
        #expect(report.object("trace")["end_reason"] as? String == "_exit")
        #expect(report.object("trace").integer("exit_status") == 3)
        #expect(report.object("summary")["truncated"] as? Bool == false)
        expectThreeLiveBlocks(report)
    }

    /// fexecve replaces the image as execve does: the trace ends as an exec, not cut short.
    @Test func fexecveEndsTheTraceAsAnExec() throws {
        let scratch = try Scratch()
        let trace = scratch.path("fexec.mtrace")
        let run = try runProgram(
            Products.cli, ["run", "-o", trace, "--", Products.fixture("hostile"), "fexec", Products.fixture("hostile")])
        #expect(run.status == 1, "the exec'd fixture without a scenario exits 1: \(run.stderr)")
        let report = try jsonReport(trace)
        #expect(report.object("trace")["end_reason"] as? String == "exec", "\(report.object("trace"))")
        #expect(report.object("summary")["truncated"] as? Bool == false)
    }

    @Test(arguments: [("abort", 134), ("segv", 139)])
    func crashKeepsEveryEvent(pattern: String, status: Int32) throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", [pattern], in: scratch)
        #expect(run.status == status)
        #expect(run.stderr.contains("the trace is truncated (it was killed by signal \(status - 128))"))
        let report = try jsonReport(trace)
        #expect(report.object("summary")["truncated"] as? Bool == true)
        #expect(report.object("trace")["end_reason"] as? String == "none")
        expectThreeLiveBlocks(report)
    }

    /// A vfork child runs on the parent's memory: its failed exec and _exit must not end the parent's trace.
    @Test func vforkChildLeavesTheParentsTraceAlone() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["vfork"], in: scratch)
        #expect(run.status == 0)
        let report = try jsonReport(trace)
        #expect(report.object("trace")["end_reason"] as? String == "exit")
        #expect(report.object("summary").integer("allocation_calls") == 100)
        #expect(report.object("summary").integer("free_calls") == 100)
    }

    /// Also when sampling (at one sample per byte every block here is sampled): the child starts with an
    /// empty table of sampled blocks, and the fork handlers take the table's lock.
    @Test(arguments: [false, true], [false, true])
    func forkedChildIsTracedOnlyWhenFollowed(follow: Bool, sampled: Bool) throws {
        let scratch = try Scratch()
        var environment = ["LD_PRELOAD": Products.preloadLibrary, "MALLOCTRACE_OUTPUT": scratch.path("fork.%p.mtrace")]
        if follow { environment["MALLOCTRACE_FOLLOW_CHILDREN"] = "1" }
        if sampled { environment["MALLOCTRACE_SAMPLE_RATE"] = "1" }
        let run = try runProgram(Products.fixture("patterns"), ["fork"], environment: environment)
        #expect(run.status == 0)
        #expect(run.stderr.isEmpty)
        let traces = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).sorted()
        #expect(traces.count == (follow ? 2 : 1))
        var leaksByFunction: [String: Int] = [:]
        for trace in traces {
            for site in try jsonReport(scratch.path(trace)).objects("leaks") {
                leaksByFunction[topFunction(site) ?? "?", default: 0] += site.integer("bytes") ?? 0
            }
        }
        // The parent's trace holds 250 + 40 B; a followed child's own trace holds its 490 B (and not the
        // parent's blocks, which it inherited but did not allocate while traced).
        #expect(leaksByFunction == (follow ? ["leak_in_parent": 290, "leak_in_child": 490] : ["leak_in_parent": 290]))
    }

    @Test func sigkillLosesNothingBeforeIt() throws {
        let scratch = try Scratch()
        let trace = scratch.path("killed.mtrace")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Products.fixture("patterns"))
        process.arguments = ["spin"]
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = Products.preloadLibrary
        environment["MALLOCTRACE_OUTPUT"] = trace
        process.environment = environment
        let stdout = Pipe()
        process.standardOutput = stdout
        try withSignalsUnblocked { try process.run() }
        // The fixture prints "ready" after its allocations.
        let ready = stdout.fileHandleForReading.availableData
        #expect(String(decoding: ready, as: UTF8.self) == "ready\n")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let report = try jsonReport(trace)
        #expect(report.object("summary")["truncated"] as? Bool == true)
        expectThreeLiveBlocks(report)
    }
}
