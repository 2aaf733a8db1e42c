import Foundation
import Testing

/// The report's sections, grouping, limits and filters, checked with exact figures from the fixtures.
@Suite(.serialized) struct ReportSectionTests {
    /// Whatever the grouping, peak contributors are each group's live bytes at the one global peak, so
    /// they add up to the peak exactly (heaptrack adds up each stack's own maximum instead).
    @Test(arguments: ["stack", "function", "file"])
    func peakContributorsSumToThePeakForEveryGrouping(grouping: String) throws {
        let scratch = try Scratch()
        for pattern in ["grouping", "peak", "leaks", "threads"] {
            let (_, trace) = try traceFixture("patterns", [pattern], in: scratch)
            let report = try jsonReport(
                trace, top: 100_000, arguments: ["--group-by", grouping, "--sections", "summary,peak"])
            let summary = report.object("summary")
            let contributors = report.objects("peak_contributors")
            #expect(contributors.compactMap { $0.integer("bytes") }.reduce(0, +) == summary.integer("peak_bytes"))
            #expect(contributors.compactMap { $0.integer("blocks") }.reduce(0, +) == summary.integer("peak_blocks"))
            #expect(contributors.compactMap { $0.integer("stack_count") }.allSatisfy { $0 >= 1 })
        }
    }

    @Test func groupingByFunctionKeepsThePeakExact() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["grouping"], in: scratch)
        let byFunction = try jsonReport(trace, arguments: ["--group-by", "function"])
        #expect(byFunction.object("summary").integer("peak_bytes") == 6500)
        let contributors = byFunction.objects("peak_contributors")
        #expect(contributors.map { $0.integer("bytes") } == [6000, 500])
        #expect(contributors.map(topFunction) == ["grouped_block", "other_block"])
        #expect(
            contributors.map { $0["group"] as? String } == [
                "grouped_block (fixture-patterns)", "other_block (fixture-patterns)",
            ])
        // grouped_block allocated from two stacks; only the second one's blocks were live at the peak.
        let calls = byFunction.objects("most_allocation_calls")
        #expect(calls.first.map(topFunction) == "grouped_block")
        #expect(calls.first?.integer("allocation_calls") == 7)
        #expect(calls.first?.integer("stack_count") == 2)
        #expect(calls.first?.integer("bytes_allocated") == 10_000)

        let byStack = try jsonReport(trace, arguments: ["--group-by", "stack"]).objects("peak_contributors")
        #expect(byStack.map { $0.integer("bytes") } == [6000, 500])
        #expect(byStack.first.map(functions)?.prefix(2) == ["grouped_block", "second_caller"])

        let byFile = try jsonReport(trace, arguments: ["--group-by", "file"]).objects("peak_contributors")
        #expect(byFile.map { $0.integer("bytes") } == [6500])
        #expect((byFile.first?["group"] as? String)?.hasSuffix("Tests/Fixtures/patterns.c") == true)
    }

    @Test(arguments: [(0, 10, 300), (1, 20, 500), (2, 30, 600)])
    func temporaryAllocationsFollowTheThreshold(threshold: Int, count: Int, bytes: Int) throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["temporary"], in: scratch)
        let report = try jsonReport(trace, arguments: ["--temporary-threshold", String(threshold)])
        #expect(report.object("summary").integer("temporary_allocations") == count)
        #expect(report.object("summary").integer("temporary_bytes") == bytes)
        let sites = report.objects("most_temporary_allocations")
        #expect(sites.map { $0.integer("blocks") }.reduce(0) { $0 + ($1 ?? 0) } == count)
        #expect(sites.allSatisfy { topFunction($0) == "temporary_rounds" })
    }

    @Test func histogramAndThreadsAddUp() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["threads"], in: scratch)
        let report = try jsonReport(trace, arguments: ["--sections", "summary,histogram,threads"])
        let summary = report.object("summary")
        let buckets = report.objects("size_histogram")
        #expect(
            buckets.compactMap { $0.integer("allocation_calls") }.reduce(0, +) == summary.integer("allocation_calls"))
        #expect(buckets.compactMap { $0.integer("bytes") }.reduce(0, +) == summary.integer("bytes_allocated"))
        // The workers allocate 16, 32, 48 and 64 B: buckets [16, 32), [32, 64) and [64, 128).
        for (minimum, calls) in [(16, 2000), (32, 4000)] {
            let bucket = try #require(buckets.first { $0.integer("min_size") == minimum })
            #expect(bucket.integer("allocation_calls").map { $0 >= calls } == true)
        }
        let threads = report.objects("per_thread")
        #expect(threads.count == 5)
        #expect(
            threads.compactMap { $0.integer("allocation_calls") }.reduce(0, +) == summary.integer("allocation_calls"))
        #expect(threads.compactMap { $0.integer("free_calls") }.reduce(0, +) == summary.integer("free_calls"))
        #expect(threads.filter { $0.integer("allocation_calls").map { $0 >= 2000 } == true }.count == 4)
        // Sections not asked for are null, never missing.
        #expect(report["leaks"] is NSNull)
        #expect(report["peak_contributors"] is NSNull)
    }

    @Test func topLimitsEachSection() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let report = try jsonReport(trace, top: 1, arguments: ["--top", "leaks=2", "--top", "allocations=0"])
        #expect(report.objects("leaks").count == 2)
        #expect(report.objects("peak_contributors").count == 1)
        #expect(report.objects("most_allocation_calls").isEmpty)
        #expect(report.objects("most_bytes_allocated").count == 1)
        let bad = try runProgram(Products.cli, ["report", trace, "--top", "nonsense=3"])
        #expect(bad.status != 0)
        let badSection = try runProgram(Products.cli, ["report", trace, "--sections", "summary,bogus"])
        #expect(badSection.status != 0)
        #expect(badSection.stderr.contains("unknown section 'bogus'"))
    }

    @Test func textSectionsCanBeChosen() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let result = try runProgram(Products.cli, ["report", trace, "--sections", "leaks", "--top", "1"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("Leaks: blocks never freed, by call stack"))
        #expect(!result.stdout.contains("Peak contributors"))
        #expect(!result.stdout.contains("allocation calls"))
        let all = try runProgram(Products.cli, ["report", trace, "--top", "1"])
        for title in [
            "Peak contributors", "Most allocation calls", "Most bytes allocated", "Most temporary allocations",
            "Leaks:", "Allocation sizes", "Threads", "temporary         5,000 allocations",
        ] {
            #expect(all.stdout.contains(title), "\(title)")
        }
    }
}

/// Filters select allocations in the same single pass: every figure then describes the selection alone.
@Suite(.serialized) struct ReportFilterTests {
    @Test func functionPatternsIncludeAndExclude() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let only = try jsonReport(trace, arguments: ["--include", "leak_hundreds"])
        #expect(only.object("summary").integer("allocation_calls") == 7)
        #expect(only.object("summary").integer("leaked_bytes") == 700)
        #expect(only.object("summary").integer("peak_bytes") == 700)
        #expect(only.object("summary").integer("free_calls") == 0)
        #expect(only.objects("leaks").map(topFunction) == ["leak_hundreds"])

        let without = try jsonReport(trace, arguments: ["--exclude", "^churn$"])
        #expect(without.object("summary").integer("allocation_calls") == 17)
        #expect(without.object("summary").integer("free_calls") == 0)
        #expect(without.object("summary").integer("unmatched_frees") == 0)
        #expect(without.object("summary").integer("leaked_bytes") == 1030)

        let modules = try jsonReport(trace, arguments: ["--include", "fixture-patterns", "--exclude", "calloc"])
        #expect(modules.object("summary").integer("allocation_calls") == 5007)
        #expect(modules.object("summary").integer("leaked_bytes") == 700)
        #expect(modules.object("options").object("filters")["exclude"] as? [String] == ["calloc"])
    }

    @Test func peakOfASelectionIsItsOwn() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["grouping"], in: scratch)
        // first_caller's 4,000 B were never live with second_caller's blocks: alone they peak at 4,000.
        let first = try jsonReport(trace, arguments: ["--include", "first_caller"])
        #expect(first.object("summary").integer("peak_bytes") == 4000)
        #expect(first.object("summary").integer("leaked_bytes") == 0)
        #expect(first.objects("peak_contributors").map { $0.integer("bytes") } == [4000])
    }

    @Test func threadAndTimeFilters() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["threads"], in: scratch)
        let all = try jsonReport(trace, arguments: ["--sections", "summary,threads"])
        let worker = try #require(
            all.objects("per_thread").first { $0.integer("allocation_calls") == 2000 }?.integer("thread_id"))
        let one = try jsonReport(trace, arguments: ["--thread", String(worker)])
        let summary = one.object("summary")
        #expect(summary.integer("allocation_calls") == 2000)
        // Its blocks are freed by the next worker: those frees still count, so nothing leaks.
        #expect(summary.integer("free_calls") == 2000)
        #expect(summary.integer("leaked_blocks") == 0)
        #expect(summary.integer("unmatched_frees") == 0)

        let everything = try jsonReport(trace, arguments: ["--from", "0", "--to", "1000"]).object("summary")
        #expect(everything.integer("allocation_calls") == all.object("summary").integer("allocation_calls"))
        let nothing = try jsonReport(trace, arguments: ["--from", "999"]).object("summary")
        #expect(nothing.integer("allocation_calls") == 0)
        #expect(nothing.integer("free_calls") == 0)
        let bad = try runProgram(Products.cli, ["report", trace, "--from", "2", "--to", "1"])
        #expect(bad.status != 0)
    }
}

/// Progress goes to standard error only when it is a terminal (here a pseudo-terminal from script(1)).
@Suite(.serialized) struct ProgressDisplayTests {
    @Test func progressOnlyOnATerminal() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let environment = ["MALLOCTRACE_PROGRESS_DELAY": "0"]
        let piped = try runProgram(Products.cli, ["report", trace, "--sections", "leaks"], environment: environment)
        #expect(piped.status == 0)
        #expect(piped.stderr.isEmpty)
        let script = "/usr/bin/script"
        try #require(FileManager.default.isExecutableFile(atPath: script), "script(1) from util-linux is needed")
        let command = "'\(Products.cli)' report '\(trace)' --sections leaks > /dev/null"
        let terminal = try runProgram(script, ["-qec", command, "/dev/null"], environment: environment)
        #expect(terminal.status == 0, "\(terminal.stderr)")
        #expect(terminal.stdout.contains("malloctrace: reading"))
        #expect(terminal.stdout.contains("\u{1B}[K"))
    }
}
