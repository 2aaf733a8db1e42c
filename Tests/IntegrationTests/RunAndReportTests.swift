import Foundation
import Testing

/// Traces the deterministic fixtures with the built CLI and checks exact figures in its JSON report.
@Suite(.serialized) struct RunAndReportTests {
    @Test func leaksAreExactPerSite() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonReport(trace)
        let summary = report.object("summary")
        // 5000 churn blocks of (i % 64) + 1 bytes, i < 2500, twice; 7 x 100; 10 x 33.
        let churnBytes = 2 * (0..<2500).reduce(0) { $0 + $1 % 64 + 1 }
        #expect(summary.integer("allocation_calls") == 5017)
        #expect(summary.integer("free_calls") == 5000)
        #expect(summary.integer("bytes_allocated") == churnBytes + 700 + 330)
        #expect(summary.integer("leaked_bytes") == 1030)
        #expect(summary.integer("leaked_blocks") == 17)
        #expect(summary.integer("peak_bytes") == 1030)
        #expect(summary["truncated"] as? Bool == false)
        let leaks = report.objects("leaks")
        #expect(leaks.count == 2)
        #expect(leaks.map { $0.integer("bytes") } == [700, 330])
        #expect(leaks.map { $0.integer("blocks") } == [7, 10])
        #expect(leaks.map(topFunction) == ["leak_hundreds", "leak_calloc_33"])
        let frame = try #require(leaks.first?.objects("stack").first)
        #expect((frame["module"] as? String)?.hasSuffix("fixture-patterns") == true)
        #expect((frame["address"] as? String)?.hasPrefix("0x") == true)
        #expect(
            leaks.first?.objects("stack").map { $0["function"] as? String }.prefix(3) == [
                "leak_hundreds", "pattern_leaks", "main",
            ])
    }

    @Test func peakIsExactWithItsContributors() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["peak"], in: scratch)
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonReport(trace)
        let summary = report.object("summary")
        #expect(summary.integer("peak_bytes") == 25000)
        #expect(summary.integer("peak_blocks") == 6)
        #expect(summary.integer("leaked_bytes") == 0)
        #expect(summary.integer("allocation_calls") == 12)
        #expect(summary.integer("free_calls") == 12)
        let contributors = report.objects("peak_contributors")
        #expect(contributors.map { $0.integer("bytes") } == [20000, 5000])
        #expect(contributors.map { $0.integer("blocks") } == [1, 5])
        #expect(contributors.map(topFunction) == ["peak_big_block", "peak_block"])
    }

    @Test func everyInterposedFunctionIsRecorded() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["all-functions"], in: scratch)
        #expect(run.status == 0, "the fixture's self-checks failed under tracing: \(run.stderr)")
        let summary = try jsonReport(trace).object("summary")
        let calls = summary["calls_by_function"] as? [String: Int]
        #expect(
            calls == [
                "malloc": 1, "calloc": 1, "realloc": 3, "reallocarray": 1, "posix_memalign": 1, "aligned_alloc": 1,
                "memalign": 1, "valloc": 1, "pvalloc": 1, "free": 8,
            ])
        #expect(summary.integer("allocation_calls") == 10)
        #expect(summary.integer("free_calls") == 9)
        #expect(summary.integer("bytes_allocated") == 10 + 21 + 30 + 4000 + 40 + 50 + 256 + 70 + 80 + 90)
        #expect(summary.integer("leaked_blocks") == 0)
        #expect(summary.integer("failed_calls") == 0)
    }

    @Test func textReportNamesTheSites() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let result = try runProgram(Products.cli, ["report", trace, "--top", "1"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("leaked            1.0 KiB (1,030 B) in 17 blocks"))
        #expect(result.stdout.contains("#1  700 B in 7 blocks"))
        // With debug information: function (file:line, module); patterns.c is built with -O0 -g.
        #expect(result.stdout.contains("leak_hundreds (patterns.c:"))
        #expect(result.stdout.contains(", fixture-patterns)"))
        #expect(!result.stdout.contains("#2"))
    }

    @Test func runPrintsPathAndThreeLineSummary() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let lines = run.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines.first == "malloctrace: wrote \(trace)")
        #expect(lines.dropFirst().first?.hasPrefix("malloctrace: 5,017 allocation calls, 5,000 frees") == true)
        #expect(lines.dropFirst(2).first == "malloctrace: leaked 1.0 KiB in 17 blocks from 2 call stacks")
    }

    @Test func depthLimitsRecordedFrames() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch, depth: 2)
        let leaks = try jsonReport(trace).objects("leaks")
        #expect(leaks.map { $0.objects("stack").count } == [2, 2])
        let (_, untraced) = try traceFixture("patterns", ["peak"], in: scratch, depth: 0)
        #expect(try jsonReport(untraced).objects("peak_contributors").first?.objects("stack").isEmpty == true)
    }

    @Test func runHelpIsHelpButTheTargetsHelpIsTheTargets() throws {
        let help = try runProgram(Products.cli, ["run", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("OVERVIEW: Run a program with malloc tracing"))
        let scratch = try Scratch()
        let target = try runProgram(Products.cli, ["run", "-o", scratch.path("e.mtrace"), "--", "/bin/echo", "--help"])
        #expect(target.status == 0)
        #expect(target.stdout.contains("echo"))
        #expect(!target.stdout.contains("OVERVIEW"))
    }

    @Test func reportRejectsWhatIsNotATrace() throws {
        let scratch = try Scratch()
        let garbage = scratch.path("garbage.mtrace")
        try Data("hello, world, this is not a trace".utf8).write(to: URL(fileURLWithPath: garbage))
        let result = try runProgram(Products.cli, ["report", garbage])
        #expect(result.status != 0)
        #expect(result.stderr.contains("is not a malloctrace trace"))
        #expect(result.stderr.split(separator: "\n").count == 1)
        let missing = try runProgram(Products.cli, ["report", scratch.path("nope.mtrace")])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("cannot open"))
    }
}
