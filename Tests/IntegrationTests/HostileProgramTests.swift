import Foundation
import MallocTraceAnalysis
import MallocTraceFormat
import Testing

/// Programs that do what real programs do and tracers get wrong (Tests/Fixtures/hostile.c): the traced run
/// must behave exactly as the untraced one (same exit status and output, no hang) and record exactly the
/// calls the program made. Each fixture scenario counts with sizes of its own (4000-4999 B).
@Suite(.serialized) struct HostileProgramTests {
    /// The fixture's own calls in a trace: allocations per marker size, and the frees of those blocks.
    struct MarkedCalls {
        var allocations: [UInt64: Int] = [:]
        var frees = 0
        var unmatchedFrees = 0
        var end: EndDetails?

        var total: Int { allocations.values.reduce(0, +) }
    }

    static func markedCalls(_ trace: String) throws -> MarkedCalls {
        let reader = try TraceReader(path: trace)
        var calls = MarkedCalls(end: reader.end)
        var live = Set<UInt64>()
        var analyzer = HeapAnalyzer()
        reader.forEachEvent { event in
            analyzer.consume(event)
            switch event.kind {
            case .allocation where (4000..<5000).contains(event.size):
                calls.allocations[event.size, default: 0] += 1
                live.insert(event.address)
            case .release:
                if live.remove(event.address) != nil { calls.frees += 1 }
            default:
                break
            }
        }
        calls.unmatchedFrees = Int(analyzer.result().summary.unmatchedFrees)
        return calls
    }

    /// Runs `fixture-hostile arguments` untraced, then traced with the preload library into `output` (a
    /// pattern); expects the same status and stdout and returns the traced run.
    static func runBoth(
        _ arguments: [String], output: String, environment: [String: String] = [:], directory: URL? = nil,
        timeout: Double = 60
    ) throws -> (untraced: ProcessResult, traced: ProcessResult) {
        let program = Products.fixture("hostile")
        let untraced = try runProgram(
            program, arguments, environment: environment, removing: ["LD_PRELOAD"], directory: directory,
            timeout: timeout)
        var tracing = environment
        tracing["LD_PRELOAD"] = Products.preloadLibrary
        tracing["MALLOCTRACE_OUTPUT"] = output
        let traced = try runProgram(program, arguments, environment: tracing, directory: directory, timeout: timeout)
        #expect(untraced.signal == nil && traced.signal == nil, "killed (a hang?): \(traced.stderr)")
        #expect(traced.status == untraced.status, "\(traced.stderr)")
        return (untraced, traced)
    }

    /// A SIGSEGV handler leaves a malloc whose tracing faulted by siglongjmp: the guard that malloc took must
    /// not keep every later allocation of the thread out of the trace.
    @Test func longjmpOutOfAnInterruptedAllocation() throws {
        let scratch = try Scratch()
        let trace = scratch.path("t.mtrace")
        let (untraced, traced) = try Self.runBoth(["longjmp"], output: trace)
        #expect(untraced.status == 0)
        #expect(traced.stdout == untraced.stdout)
        let calls = try Self.markedCalls(trace)
        #expect(calls.allocations[4011] == 1000)
        #expect(calls.frees == 1000)
        #expect(calls.end?.reason == .normalExit)
    }

    /// Threads cancelled (deferred) while they malloc/free in a loop, with cleanup handlers that allocate:
    /// the tracer's cancellation points (fallocate, write...) must not end a thread holding a tracer lock.
    @Test func cancelledThreadsDoNotHangTheProgram() throws {
        let scratch = try Scratch()
        let trace = scratch.path("t.mtrace")
        let (untraced, traced) = try Self.runBoth(["cancel"], output: trace, timeout: 30)
        #expect(untraced.status == 0)
        // The number of calls depends on timing: the traced run says how many it made.
        let line = traced.stdout.trimmingCharacters(in: .newlines)
        #expect(untraced.stdout.hasPrefix("calls "))
        let made = try #require(Int(line.dropFirst("calls ".count)), "stdout: \(traced.stdout)")
        let calls = try Self.markedCalls(trace)
        #expect(calls.allocations[4002] == 80)  // one cleanup handler per thread and round
        #expect(calls.total == made)
        #expect(calls.frees == made)
        #expect(calls.unmatchedFrees == 0)
        #expect(calls.end?.reason == .normalExit)
    }

    /// Fork handlers that allocate, registered by a linked library's constructor before the tracer's own
    /// constructor ran: every one of their calls is recorded, in the parent and in each followed child,
    /// as the handlers registered later are.
    @Test(arguments: [false, true])
    func forkHandlersRegisteredBeforeTheTracer(follow: Bool) throws {
        let scratch = try Scratch()
        let environment = follow ? ["MALLOCTRACE_FOLLOW_CHILDREN": "1"] : [:]
        let (untraced, _) = try Self.runBoth(
            ["atfork"], output: scratch.path("t.%p.mtrace"), environment: environment)
        #expect(untraced.status == 0)
        let traces = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).map(scratch.path)
        #expect(traces.count == (follow ? 3 : 1))
        var parents = 0, children = 0
        for trace in traces {
            let calls = try Self.markedCalls(trace)
            if calls.allocations[4101] != nil || calls.allocations[4104] != nil {
                parents += 1
                #expect(calls.allocations == [4101: 20, 4102: 20, 4104: 20, 4105: 20])
                #expect(calls.end?.reason == .normalExit)
            } else {
                children += 1
                #expect(calls.allocations == [4103: 10, 4106: 10])
                #expect(calls.end?.reason == .underscoreExit(status: 0))
            }
        }
        #expect(parents == 1)
        #expect(children == (follow ? 2 : 0))
    }

    /// quick_exit skips destructors: the trace still ends cleanly, after the at_quick_exit handlers.
    @Test func quickExitEndsTheTrace() throws {
        let scratch = try Scratch()
        let trace = scratch.path("t.mtrace")
        let (untraced, traced) = try Self.runBoth(["quick-exit"], output: trace)
        #expect(untraced.status == 3)
        #expect(traced.stderr.isEmpty)
        let calls = try Self.markedCalls(trace)
        #expect(calls.allocations == [4041: 1, 4042: 1])
        #expect(calls.end?.reason == .quickExit(status: 3))
        #expect(try jsonReport(trace).object("trace")["end_reason"] as? String == "quick_exit")
    }

    /// 200 failed execs while 4 other threads allocate: none of their calls is lost, and only the real exit
    /// ends the trace.
    @Test func failedExecsLoseNothingOfOtherThreads() throws {
        let scratch = try Scratch()
        let trace = scratch.path("t.mtrace")
        let (untraced, traced) = try Self.runBoth(["exec-fails"], output: trace)
        #expect(untraced.status == 0)
        #expect(traced.stderr.isEmpty)
        let calls = try Self.markedCalls(trace)
        #expect(calls.allocations == [4021: 80000])
        #expect(calls.frees == 80000)
        #expect(calls.unmatchedFrees == 0)
        #expect(calls.end?.reason == .normalExit)
        #expect(try TraceReader(path: trace).diagnostics.isEmpty)
    }

    /// An allocation in a .preinit_array function starts the tracer before libc has set environ: it must
    /// still honour MALLOCTRACE_OUTPUT and hide itself from the program's environment.
    @Test func allocationBeforeLibcIsInitialized() throws {
        let scratch = try Scratch()
        let trace = scratch.path("t.mtrace")
        let (untraced, traced) = try Self.runBoth(["preinit"], output: trace, directory: scratch.url)
        #expect(untraced.stdout == "LD_PRELOAD=- MALLOCTRACE_OUTPUT=-\n")
        #expect(traced.stdout == untraced.stdout)
        #expect(traced.stderr.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path) == ["t.mtrace"])
        #expect(try Self.markedCalls(trace).allocations == [4031: 1])
        let (run, runTrace) = try traceFixture("hostile", ["preinit"], in: scratch)
        #expect(run.status == 0)
        #expect(run.stdout == untraced.stdout)
        #expect(run.stderr.hasPrefix("malloctrace: wrote \(runTrace)\n"), "\(run.stderr)")
    }

    /// A relative MALLOCTRACE_OUTPUT names files in the directory the process started in, also for a
    /// child forked after chdir("/").
    @Test func relativeOutputSurvivesChdir() throws {
        let scratch = try Scratch()
        let name = "hostile-\(UUID().uuidString.prefix(8))"
        defer {
            for stray in (try? FileManager.default.contentsOfDirectory(atPath: "/")) ?? [] where stray.hasPrefix(name) {
                try? FileManager.default.removeItem(atPath: "/" + stray)
            }
        }
        let (untraced, traced) = try Self.runBoth(
            ["chdir-fork"], output: name + ".%p.mtrace", environment: ["MALLOCTRACE_FOLLOW_CHILDREN": "1"],
            directory: scratch.url)
        #expect(untraced.status == 0)
        #expect(traced.stderr.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "/").filter { $0.hasPrefix(name) }.isEmpty)
        let traces = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).filter {
            $0.hasPrefix(name)
        }
        #expect(traces.count == 2)
        let children = try traces.map { try Self.markedCalls(scratch.path($0)).allocations[4051] }
        #expect(children.compactMap { $0 } == [1])
    }

    /// A program started with descriptors 0-2 closed gets 0, 1 and 2 from its first open() calls, also when
    /// traced: the tracer (libunwind's pipe) never takes them.
    @Test func programStartedWithoutStandardDescriptors() throws {
        let scratch = try Scratch()
        let contents = try Self.descriptorsOpened(closingStandardOnes: true, in: scratch)
        #expect(contents.untraced == ["fd 0\n", "fd 1\nstdout\n", "fd 2\n"])
        #expect(contents.traced == contents.untraced)
        #expect(try Self.markedCalls(scratch.path("t.mtrace")).allocations == [4071: 1])
    }

    /// With 0-2 open, the program's first open() calls return 3, 4 and 5 traced as untraced: libunwind's pipe
    /// and the trace file take numbers far above them.
    @Test func tracingTakesNoLowDescriptor() throws {
        let contents = try Self.descriptorsOpened(closingStandardOnes: false, in: try Scratch())
        #expect(contents.untraced == ["fd 3\n", "fd 4\n", "fd 5\n"])
        #expect(contents.traced == contents.untraced)
    }

    /// What the hostile fixture's `closed-fds` scenario wrote into its three files (each names the descriptor
    /// open() gave it), untraced and traced (plain LD_PRELOAD, trace t.mtrace).
    private static func descriptorsOpened(closingStandardOnes: Bool, in scratch: Scratch) throws
        -> (untraced: [String], traced: [String])
    {
        var contents: [[String]] = []
        for traced in [false, true] {
            let file = scratch.path(traced ? "traced" : "untraced")
            let preload =
                traced
                ? ["LD_PRELOAD=\(Products.preloadLibrary)", "MALLOCTRACE_OUTPUT=\(scratch.path("t.mtrace"))"] : []
            let closing = closingStandardOnes ? " <&- >&- 2>&-" : ""
            let command = "exec /usr/bin/env \(preload.joined(separator: " ")) \"$0\" closed-fds \"$1\"\(closing)"
            let result = try runProgram(
                "/bin/sh", ["-c", command, Products.fixture("hostile"), file], removing: ["LD_PRELOAD"], timeout: 30)
            #expect(result.status == 0)
            contents.append(
                try [file, file + ".1", file + ".2"].map { try String(contentsOfFile: $0, encoding: .utf8) })
        }
        return (contents[0], contents[1])
    }

    /// The signal mask is the caller's, traced or not: `run` passes on what its caller blocked (it gave the program an
    /// empty mask), and under the leak scan, which keeps its stop signal deliverable while the program runs, a
    /// program that execs hands the new image the mask it set, the stop signal included.
    @Test func signalMasksAreTheCallersAndPassThroughExec() throws {
        let scratch = try Scratch()
        let hostile = Products.fixture("hostile")
        let run = [Products.cli, "run", "-o", scratch.path("m%p.mtrace")]
        let cases: [(set: String, traced: [String])] = [
            ("some", ["mask-exec", "some"] + run + ["--", hostile, "print-mask"]),
            (
                "all",
                Array(run.dropFirst()) + ["--leak-kinds", "--", hostile, "mask-exec", "all", hostile, "print-mask"]
            ),
        ]
        for (set, arguments) in cases {
            let untraced = try runProgram(hostile, ["mask-exec", set, hostile, "print-mask"])
            #expect(untraced.status == 0 && untraced.stdout.hasPrefix("SigBlk:"), "\(untraced.stdout)")
            let traced = try runProgram(set == "some" ? hostile : Products.cli, arguments)
            #expect(traced.status == 0, "\(set): \(traced.stderr)")
            #expect(traced.stdout == untraced.stdout, "\(set)")
        }
    }

    /// %t and %h expand; a name that exists (a restarted PID 1 finds its old file) gets -2, -3 ... beyond 9.
    @Test func outputPatternEscapesAndFreshNames() throws {
        let scratch = try Scratch()
        let before = Int(Date().timeIntervalSince1970)
        _ = try Self.runBoth(["quick-exit"], output: scratch.path("h.%h.%t.mtrace"))
        let after = Int(Date().timeIntervalSince1970)
        let host = RunCommandHostName.current
        let named = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path)
        let seconds = named.compactMap { name -> Int? in
            guard name.hasPrefix("h.\(host).") else { return nil }
            return Int(name.dropFirst("h.\(host).".count).dropLast(".mtrace".count))
        }
        #expect(seconds.count == 1 && (before...after).contains(seconds[0]), "\(named)")

        let existing = scratch.path("pid1.mtrace")
        try Data("old".utf8).write(to: URL(fileURLWithPath: existing))
        for number in 2...11 where number != 5 {
            try Data("old".utf8).write(to: URL(fileURLWithPath: scratch.path("pid1-\(number).mtrace")))
        }
        for expected in [5, 12] {
            let (_, traced) = try Self.runBoth(["quick-exit"], output: existing)
            let chosen = scratch.path("pid1-\(expected).mtrace")
            #expect(traced.stderr == "malloctrace: \(existing) exists; the trace goes to \(chosen) instead\n")
            #expect(try Self.markedCalls(chosen).allocations == [4041: 1, 4042: 1])
        }
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "old")
    }

    /// `ulimit -f` below one 4 MiB window: the trace keeps what fits (readable, cut short) and `run` says so
    /// in words that agree with the library's line; below one page there is no file at all.
    @Test func fileSizeLimitBelowOneWindow() throws {
        let scratch = try Scratch()
        let trace = scratch.path("t.mtrace")
        let command = [
            "--fsize=100000", "--", Products.cli, "run", "--no-compress", "-o", trace, "--",
            Products.fixture("hostile"),
            "grow",
        ]
        let run = try runProgram("/usr/bin/prlimit", command, timeout: 60)
        #expect(run.status == 0)
        let lines = run.stderr.split(separator: "\n").map(String.init)
        #expect(
            lines.first
                == "malloctrace: the trace file reached the file size limit (ulimit -f): File too large;"
                + " tracing stopped, the trace ends here")
        #expect(lines.contains("malloctrace: wrote \(trace)"))
        #expect(lines.contains { $0.hasSuffix("so these figures cover only its first part") }, "\(run.stderr)")
        #expect(!run.stderr.contains("cannot read it back"))
        let size = try FileManager.default.attributesOfItem(atPath: trace)[.size] as? NSNumber
        #expect((size?.intValue ?? 0) > 0 && (size?.intValue ?? 0) <= 100_000)
        let reader = try TraceReader(path: trace)
        #expect(reader.isTruncated && reader.diagnostics.isEmpty)
        #expect(try Self.markedCalls(trace).allocations[4061, default: 0] > 1000)

        let tiny = try runProgram(
            "/usr/bin/prlimit",
            ["--fsize=1000", "--", Products.cli, "run", "--no-compress", "-o", trace + "2", "--"]
                + [Products.fixture("hostile"), "grow"], timeout: 60)
        #expect(
            tiny.stderr.hasPrefix(
                "malloctrace: no trace file: the file size limit (ulimit -f) leaves no room for one; tracing is off\n"
                    + "malloctrace: no trace was written to \(trace)2: the library could not create it"))
        #expect(!FileManager.default.fileExists(atPath: trace + "2"))
    }

    /// `run -o` knows the same escapes: it expands %h and %t itself (so it can name the file it summarizes)
    /// and refuses an unknown one before starting anything.
    @Test func runExpandsTheSameEscapes() throws {
        let scratch = try Scratch()
        let run = try runProgram(
            Products.cli, ["run", "--no-compress", "-o", scratch.path("r.%h.%t.mtrace"), "--", "/bin/true"])
        #expect(run.status == 0, "\(run.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path)
        #expect(names.count == 1 && names[0].hasPrefix("r.\(RunCommandHostName.current)."), "\(names)")
        #expect(run.stderr.hasPrefix("malloctrace: wrote \(scratch.path(names.first ?? ""))\n"), "\(run.stderr)")
        let refused = try runProgram(Products.cli, ["run", "-o", scratch.path("r.%x.mtrace"), "--", "/bin/true"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("-o has an unknown escape '%x' (use %p, %e, %t, %h or %%)"))
    }
}

enum RunCommandHostName {
    static var current: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
