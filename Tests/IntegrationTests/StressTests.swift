import Foundation
import MallocTraceAnalysis
import MallocTraceFormat
import MallocTraceReports
import Testing

/// Threads and processes under load: exact totals with millions of cross-thread frees, and fork while other
/// threads allocate (no deadlock, every child traced when followed).
@Suite(.serialized) struct StressTests {
    /// Sums the sites whose innermost frame is `function`.
    private func figures(of function: String, in trace: String) throws -> (SiteStatistics, HeapSummary) {
        let reader = try TraceReader(path: trace)
        var analyzer = HeapAnalyzer()
        reader.forEachEventBatch { analyzer.consume($0) }
        let analysis = analyzer.result()
        let resolver = FrameResolver(modules: reader.modules)
        var total = SiteStatistics(stackID: 0)
        for site in analysis.sites {
            guard let first = reader.stacks[site.stackID]?.first, resolver.frame(for: first).function == function
            else { continue }
            total.allocationCalls += site.allocationCalls
            total.bytesAllocated += site.bytesAllocated
            total.leakedBlocks += site.leakedBlocks
        }
        return (total, analysis.summary)
    }

    @Test func eightThreadsWithMillionsOfCrossThreadFreesBalanceExactly() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("stress", ["threads", "8", "250000"], in: scratch)
        #expect(run.status == 0, "\(run.stderr)")
        let (blocks, summary) = try figures(of: "alloc_block", in: trace)
        #expect(blocks.allocationCalls == 2_000_000)
        #expect(blocks.bytesAllocated == 250_000 * 8 * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8))
        #expect(blocks.leakedBlocks == 0)
        #expect(summary.unmatchedFrees == 0)
        #expect(summary.freeCalls >= 2_000_000)
        #expect(summary.threadCount == 9)
    }

    /// Sampling at one point per byte sends every call through the table of sampled blocks and its lock,
    /// which the fork handlers must take too (32-byte blocks are always sampled at that rate).
    @Test(arguments: [nil, "1"])
    func forkWhileThreadsAllocateNeitherDeadlocksNorLosesChildren(sampleRate: String?) throws {
        let scratch = try Scratch()
        var environment = [
            "LD_PRELOAD": Products.preloadLibrary, "MALLOCTRACE_OUTPUT": scratch.path("f.%p.mtrace"),
            "MALLOCTRACE_FOLLOW_CHILDREN": "1",
        ]
        if let sampleRate { environment["MALLOCTRACE_SAMPLE_RATE"] = sampleRate }
        let result = try runProgram(
            Products.fixture("stress"), ["fork-threads", "20"], environment: environment, timeout: 60)
        #expect(result.signal == nil, "the fixture hung or crashed")
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
        let traces = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).sorted()
        #expect(traces.count == 21)
        var children = 0
        for trace in traces {
            let (blocks, summary) = try figures(of: "child_block", in: scratch.path(trace))
            guard blocks.allocationCalls > 0 else { continue }
            children += 1
            #expect(blocks.allocationCalls == 100)
            #expect(blocks.leakedBlocks == 0)
            #expect(summary.unmatchedFrees == 0)
        }
        #expect(children == 20)
    }

    @Test func systemRunsAFollowedShellAndItsCommand() throws {
        let scratch = try Scratch()
        let run = try runProgram(
            Products.cli,
            [
                "run", "--follow-children", "-o", scratch.path("s.%p.mtrace"), "--", Products.fixture("processes"),
                "system", Products.fixture("patterns"),
            ])
        #expect(run.status == 0, "\(run.stderr)")
        var leaked: [Int] = []
        for trace in try FileManager.default.contentsOfDirectory(atPath: scratch.url.path) {
            let report = try jsonReport(scratch.path(trace))
            if (report.object("trace")["executable"] as? String)?.hasSuffix("fixture-patterns") == true {
                leaked.append(report.object("summary").integer("leaked_bytes") ?? -1)
            }
        }
        #expect(leaked == [1030])
    }

    @Test func setUserIDProgramIsRefused() throws {
        guard geteuid() == 0 else { return }  // only root can hand a file to another user
        let scratch = try Scratch()
        let copy = scratch.path("setuid-patterns")
        try FileManager.default.copyItem(atPath: Products.fixture("patterns"), toPath: copy)
        #expect(chown(copy, 65534, 65534) == 0)
        #expect(chmod(copy, 0o4755) == 0)
        let result = try runProgram(Products.cli, ["run", "-o", scratch.path("u.mtrace"), "--", copy, "leaks"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("set-user-ID"))
        #expect(!FileManager.default.fileExists(atPath: scratch.path("u.mtrace")))
    }
}

/// `--include` and `--exclude` decide every stack, also those a thread used before the chunk defining them
/// was read (4 threads racing through 4,096 distinct stacks).
@Suite struct StackFilterRaceTests {
    @Test func filtersSeeStacksDefinedLater() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("stress", ["stack-race"], in: scratch)
        #expect(run.status == 0, "\(run.stderr)")
        let all = try jsonReport(trace, arguments: ["--sections", "summary"])
        let included = try jsonReport(trace, arguments: ["--sections", "summary", "--include", "leaf_alloc"])
        let excluded = try jsonReport(trace, arguments: ["--sections", "summary", "--exclude", "leaf_alloc"])
        let calls = { (report: [String: Any]) in report.object("summary").integer("allocation_calls") ?? -1 }
        #expect(calls(included) == 16_384)
        #expect(calls(excluded) == calls(all) - 16_384)
    }
}
