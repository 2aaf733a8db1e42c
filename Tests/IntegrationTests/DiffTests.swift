import Foundation
import Testing

/// `malloctrace diff A B`: groups are matched by symbolized frames, so runs of one program at other
/// addresses, from another path, with other stack ids, match; deltas are exact.
@Suite(.serialized) struct DiffTests {
    private func diff(_ before: String, _ after: String, _ arguments: [String] = []) throws -> [String: Any] {
        let result = try runProgram(Products.cli, ["diff", before, after, "--format", "json"] + arguments)
        #expect(result.status == 0, "diff failed: \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    /// The same program from two paths (so two module paths, and other addresses under ASLR) with the same
    /// work: nothing of the program's own changes.
    @Test func runsAtOtherAddressesMatch() throws {
        let scratch = try Scratch()
        var traces: [String] = []
        for name in ["first", "second"] {
            try FileManager.default.createDirectory(atPath: scratch.path(name), withIntermediateDirectories: true)
            let program = scratch.path("\(name)/program")
            try FileManager.default.copyItem(atPath: Products.fixture("patterns"), toPath: program)
            traces.append(try traceProgram(program, ["leaks"], in: scratch))
        }
        let first = try jsonReport(traces[0], arguments: ["--sections", "leaks"]).objects("leaks")
        let second = try jsonReport(traces[1], arguments: ["--sections", "leaks"]).objects("leaks")
        #expect(
            first.first?.objects("stack").first?["module"] as? String != second.first?.objects("stack").first?["module"]
                as? String)
        for grouping in ["stack", "function", "file"] {
            let result = try diff(traces[0], traces[1], ["--group-by", grouping])
            #expect(result.integer("changed_groups") == 0, "\(grouping): \(result.objects("changes"))")
            #expect(result.integer("only_before") == 0)
            #expect(result.integer("only_after") == 0)
            // Stacks: churn (its two call sites differ only in lines), leak_hundreds, leak_calloc_33; files: one.
            #expect(result.integer("matched_groups") == (grouping == "file" ? 1 : 3))
            #expect(result.object("summary").object("change").integer("leaked_bytes") == 0)
        }
    }

    @Test func deltasAreExactAndSortedByTheLargestChange() throws {
        let scratch = try Scratch()
        let (_, leaks) = try traceFixture("patterns", ["leaks"], in: scratch)
        let (_, grouping) = try traceFixture("patterns", ["grouping"], in: scratch)
        let result = try diff(leaks, grouping, ["--group-by", "function", "--top", "100"])
        let change = result.object("summary").object("change")
        #expect(change.integer("allocation_calls") == 8 - 5017)
        #expect(change.integer("leaked_bytes") == -1030)
        #expect(change.integer("peak_bytes") == 6500 - 1030)
        let changes = result.objects("changes")
        func entry(_ function: String) -> [String: Any]? { changes.first { topFunction($0) == function } }
        #expect(entry("churn")?.object("change").integer("allocation_calls") == -5000)
        #expect(entry("churn")?["after"] is NSNull)
        #expect(entry("grouped_block")?.object("change").integer("peak_bytes") == 6000)
        #expect(entry("grouped_block")?.object("change").integer("bytes_allocated") == 10_000)
        #expect(entry("grouped_block")?["before"] is NSNull)
        #expect(entry("leak_hundreds")?.object("change").integer("leaked_bytes") == -700)
        #expect(entry("leak_calloc_33")?.object("change").integer("leaked_bytes") == -330)
        // Largest first: churn's 158.5 KiB of allocations, then grouped_block's 10,000 B.
        #expect(changes.prefix(2).map(topFunction) == ["churn", "grouped_block"])
        let byLeaks = try diff(leaks, grouping, ["--group-by", "function", "--sort", "leaked", "--top", "2"])
        #expect(byLeaks.objects("changes").map(topFunction) == ["leak_hundreds", "leak_calloc_33"])

        let text = try runProgram(Products.cli, ["diff", leaks, grouping, "--top", "3"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("leaked"))
        #expect(text.stdout.contains("#1 (gone)  calls -5,000 (5,000 -> 0)"))
        #expect(text.stdout.contains("churn (patterns.c:"))
    }

    @Test func aTraceAgainstItselfHasNoChanges() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["threads"], in: scratch)
        let result = try diff(trace, trace)
        #expect(result.integer("changed_groups") == 0)
        #expect(result.objects("changes").isEmpty)
        let text = try runProgram(Products.cli, ["diff", trace, trace])
        #expect(text.stdout.contains("no changes"))
    }
}
