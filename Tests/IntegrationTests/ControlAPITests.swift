import Foundation
import MallocTraceFormat
import Testing

/// The control API (malloctrace.h) end to end: the `api` fixture traced with `malloctrace run`, its reports
/// checked against the exact figures written in Tests/Fixtures/api.c.
@Suite struct ControlAPITests {
    private func trace(_ scenario: String, in scratch: Scratch, options: [String] = []) throws -> String {
        let (result, trace) = try traceFixture("api", [scenario], in: scratch, options: options)
        #expect(result.status == 0, "\(result.stderr)")
        return trace
    }

    private func summary(_ trace: String, _ arguments: [String] = []) throws -> [String: Any] {
        try jsonReport(trace, arguments: arguments).object("summary")
    }

    @Test func poolBlocksAreCountedExactlyAndTheBackingBlockOnce() throws {
        let scratch = try Scratch()
        let trace = try trace("pool", in: scratch)
        let report = try jsonReport(trace)
        let summary = report.object("summary")
        #expect(summary.integer("allocation_calls") == 15)
        #expect(summary.integer("bytes_allocated") == 2170)
        #expect(summary.integer("free_calls") == 4)
        #expect(summary.integer("peak_bytes") == 1120)
        #expect(summary.integer("peak_blocks") == 13)
        #expect(summary.integer("leaked_bytes") == 320)
        #expect(summary.integer("leaked_blocks") == 5)
        #expect(summary.integer("unmatched_frees") == 0)
        let pools = Dictionary(uniqueKeysWithValues: summary.objects("pools").map { ($0.string("name") ?? "", $0) })
        #expect(Set(pools.keys) == ["alpha", "beta"])
        // Destroying alpha released its 5 remaining blocks: nothing of it leaks.
        #expect(pools["alpha"]?.integer("allocation_calls") == 8)
        #expect(pools["alpha"]?.integer("bytes_allocated") == 800)
        #expect(pools["alpha"]?.integer("peak_bytes") == 800)
        #expect(pools["alpha"]?.integer("leaked_blocks") == 0)
        #expect(pools["beta"]?.integer("leaked_bytes") == 320)
        #expect(pools["beta"]?.integer("leaked_blocks") == 5)
        // Pool blocks have stacks like malloc blocks, led by their pool's frame.
        let leaks = report.objects("leaks")
        #expect(leaks.count == 1)
        #expect(functions(try #require(leaks.first)).prefix(2) == ["[pool beta]", "pool_scenario"])
        let contributors = report.objects("peak_contributors").map { topFunction($0) }
        #expect(Set(contributors) == ["[pool alpha]", "[pool beta]"])
    }

    @Test func poolBlocksStandAsTheirBackingBlocksUnderALeakScan() throws {
        let scratch = try Scratch()
        let trace = try trace("poolscan", in: scratch, options: ["--leak-kinds"])
        let report = try jsonReport(trace, arguments: ["--leak-kinds", "all"])
        let kinds = report.object("summary").object("leak_kinds")
        #expect(kinds.object("reachable").integer("bytes") == 60)
        #expect(kinds.object("reachable").integer("blocks") == 2)
        #expect(kinds.object("definite").integer("bytes") == 120)
        #expect(kinds.object("definite").integer("blocks") == 3)
        #expect(kinds.object("unclassified").integer("bytes") == 64)
        #expect(kinds.object("indirect").integer("blocks") == 0)
        // check counts the lost pool's blocks, and only them, as the leak, at the site that carved them.
        let check = try runProgram(Products.cli, ["check", "--format", "json", trace])
        #expect(check.status == 23, "\(check.stderr)")
        #expect(check.stdout.contains("[pool lost]"), "\(check.stdout)")
        #expect(!check.stdout.contains("[pool kept]") && !check.stdout.contains("[pool static]"), "\(check.stdout)")
    }

    @Test func poolsAppearInTextFlameGraphsAndGroups() throws {
        let scratch = try Scratch()
        let trace = try trace("pool", in: scratch)
        let text = try runProgram(Products.cli, ["report", trace])
        #expect(text.status == 0)
        #expect(text.stdout.contains("[pool beta]"))
        #expect(text.stdout.contains("beta: 320 B in 5 blocks, peak 320 B, leaked 320 B in 5 blocks"))
        #expect(!text.stdout.contains("(no module)"), "pool frames are not unresolved frames")
        let folded = try runProgram(Products.cli, ["flamegraph", trace, "--metric", "leaked", "--folded"])
        #expect(folded.status == 0, "\(folded.stderr)")
        let lines = folded.stdout.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.hasSuffix(";[pool beta] 320") == true, "\(folded.stdout)")
        let byFunction = try jsonReport(trace, arguments: ["--group-by", "function", "--sections", "peak"])
        let groups = byFunction.objects("peak_contributors").compactMap { $0.string("group") }
        #expect(groups.contains { $0.hasPrefix("[pool alpha]") } && groups.contains { $0.hasPrefix("[pool beta]") })
    }

    @Test func pauseExcludesExactlyTheCallsInBetween() throws {
        let scratch = try Scratch()
        let trace = try trace("pause", in: scratch)
        let summary = try summary(trace)
        #expect(summary.integer("allocation_calls") == 3)
        #expect(summary.integer("bytes_allocated") == 900)
        #expect(summary.integer("free_calls") == 1)
        #expect(summary.integer("peak_bytes") == 700)
        #expect(summary.integer("peak_blocks") == 2)
        #expect(summary.integer("leaked_bytes") == 600)
        #expect(summary.integer("leaked_blocks") == 1)
        #expect(summary.integer("unmatched_frees") == 0)
        let kinds = summary.objects("marks").compactMap { $0.string("kind") }
        #expect(kinds == ["pause", "resume"])
    }

    @Test func pauseAndResumeFromOtherThreadsBoundTheMainThreadsCalls() throws {
        let scratch = try Scratch()
        let trace = try trace("threads", in: scratch)
        let reader = try TraceReader(path: trace)
        var inside = false
        var sizes: [UInt64] = []
        reader.forEachEvent { event in
            if event.kind == .control && event.function == .mark { inside.toggle() }
            if inside && event.kind == .allocation { sizes.append(event.size) }
        }
        #expect(reader.marks.map(\.name) == ["begin", "", "", "end"])
        #expect(Set(reader.marks.map(\.threadID)).count == 3)
        #expect(sizes.filter { (1000...1004).contains($0) }.isEmpty, "\(sizes)")
        #expect(sizes.filter { (2000...2002).contains($0) }.sorted() == [2000, 2001, 2002], "\(sizes)")
    }

    @Test func marksBoundReportsExactly() throws {
        let scratch = try Scratch()
        let trace = try trace("marks", in: scratch)
        let first = try summary(trace, ["--from-mark", "one", "--to-mark", "two"])
        #expect(first.integer("allocation_calls") == 4)
        #expect(first.integer("bytes_allocated") == 444)
        #expect(first.integer("leaked_bytes") == 444)
        #expect(first.integer("leaked_blocks") == 4)
        let second = try summary(trace, ["--from-mark", "two", "--to-mark", "three"])
        #expect(second.integer("allocation_calls") == 2)
        #expect(second.integer("bytes_allocated") == 444)
        #expect(second.integer("free_calls") == 0)
        #expect(second.integer("leaked_bytes") == 444)
        #expect(second.integer("leaked_blocks") == 2)
        let open = try summary(trace, ["--from-mark", "two"])
        #expect(open.integer("allocation_calls") == 2)

        let unknown = try runProgram(Products.cli, ["report", trace, "--from-mark", "four"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("has no mark named 'four' (it has 'one', 'two', 'three')"), "\(unknown.stderr)")
    }

    @Test func snapshotsAreLiveSetsThatDiffCompares() throws {
        let scratch = try Scratch()
        let trace = try trace("marks", in: scratch)
        let diff = try runProgram(Products.cli, ["diff", trace + "@s1", trace + "@s2", "--format", "json"])
        #expect(diff.status == 0, "\(diff.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as? [String: Any])
        let before = object.object("before"), after = object.object("after")
        #expect(before.string("snapshot") == "s1" && after.string("snapshot") == "s2", "\(diff.stdout)")
        let totals = object.object("summary")
        #expect(totals.object("before").integer("leaked_bytes") == 444)
        #expect(totals.object("before").integer("leaked_blocks") == 4)
        #expect(totals.object("after").integer("leaked_bytes") == 777)
        #expect(totals.object("after").integer("leaked_blocks") == 5)
        #expect(totals.object("change").integer("leaked_bytes") == 333)

        let unknown = try runProgram(Products.cli, ["diff", trace + "@s1", trace + "@s3"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("has no snapshot named 's3' (it has 's1', 's2')"), "\(unknown.stderr)")
        // A file whose own name holds '@' is read whole; with a trailing '@' too.
        let odd = scratch.path("odd@name.mtrace")
        try FileManager.default.copyItem(atPath: trace, toPath: odd)
        let whole = try runProgram(Products.cli, ["diff", odd, odd + "@", "--format", "json"])
        #expect(whole.status == 0, "\(whole.stderr)")
        let snap = try runProgram(Products.cli, ["diff", odd + "@s1", odd + "@s2"])
        #expect(snap.status == 0, "\(snap.stderr)")
    }

    @Test func marksShowOnTheHTMLTimeline() throws {
        let scratch = try Scratch()
        let trace = try trace("marks", in: scratch)
        let page = try runProgram(Products.cli, ["report", trace, "--format", "html"])
        #expect(page.status == 0, "\(page.stderr)")
        for name in ["one", "two", "three"] { #expect(page.stdout.contains("<title>mark \(name) at ")) }
        for name in ["s1", "s2"] { #expect(page.stdout.contains("<title>snapshot \(name) at ")) }
    }

    @Test func aProgramUsingTheAPIRunsUnchangedUntraced() throws {
        let untraced = try runProgram(Products.fixture("api"), ["untraced"])
        #expect(untraced.status == 0 && untraced.stdout.hasPrefix("result "), "\(untraced.stderr)")
        let scratch = try Scratch()
        let trace = scratch.path("untraced.mtrace")
        let traced = try runProgram(
            Products.cli, ["run", "-o", trace, "--", Products.fixture("api"), "untraced"])
        #expect(traced.status == 0, "\(traced.stderr)")
        #expect(traced.stdout == untraced.stdout)
        let summary = try summary(trace)
        let pools = summary.objects("pools")
        #expect(pools.count == 1 && pools.first?.integer("allocation_calls") == 256)
        #expect(summary.objects("marks").count == 4)
    }

    /// The Swift product: the same calls from Swift, in a program that runs the same untraced.
    @Test func swiftProgramsUseTheSameCalls() throws {
        let program = Products.directory.appendingPathComponent("malloctrace-swift-arena").path
        let untraced = try runProgram(program, [])
        #expect(untraced.status == 0 && untraced.stdout == "checksum 4950\n", "\(untraced.stderr)")
        let scratch = try Scratch()
        let trace = scratch.path("swift.mtrace")
        let traced = try runProgram(Products.cli, ["run", "-o", trace, "--", program])
        #expect(traced.status == 0 && traced.stdout == untraced.stdout, "\(traced.stderr)")
        let summary = try summary(trace)
        let pools = summary.objects("pools")
        #expect(pools.count == 1)
        #expect(pools.first?.string("name") == "swift-arena")
        #expect(pools.first?.integer("allocation_calls") == 100)
        #expect(pools.first?.integer("bytes_allocated") == 6400)
        #expect(pools.first?.integer("leaked_blocks") == 0)
        #expect(summary.objects("marks").compactMap { $0.string("name") } == ["filled"])
    }
}
