import Foundation
import MallocTraceFormat
import Testing

/// `report --allocator` against glibc's own figures: the fixture `chunks` writes malloc_usable_size of every block
/// and mallinfo2's mmapped chunks (hblks, hblkhd) while its blocks are live; the trace must say the same.
@Suite struct AllocatorViewTests {
    /// Traces `chunks SCENARIO FILE` (FILE in the scratch directory) and returns the run, the trace and FILE.
    private func traceChunks(
        _ scenario: String, in scratch: Scratch, environment: [String: String] = [:]
    ) throws -> (ProcessResult, String, String) {
        let output = scratch.path("\(scenario).txt")
        let trace = scratch.path("chunks-\(scenario).mtrace")
        let result = try runProgram(
            Products.cli, ["run", "-o", trace, "--", Products.fixture("chunks"), scenario, output],
            environment: environment)
        return (result, trace, output)
    }

    struct Scenario: Sendable, CustomTestStringConvertible {
        var name: String
        /// mallinfo2 while the 16 blocks are live, checked against the fixture's own output as well: these are
        /// glibc 2.36's answers, so a change here means glibc changed, not the tracer.
        var mappedChunks: Int
        var mappedBytes: Int
        var thresholdChanges: [(bytes: Int, cause: String)]
        var testDescription: String { name }
    }

    static let scenarios = [
        // 131,056 B and more reach the 128 KiB threshold with their chunk; 100,000 B does not.
        Scenario(
            name: "split", mappedChunks: 7, mappedBytes: 6_385_664,
            thresholdChanges: [
                (135_168, "freed_mmapped_chunk"), (200_704, "freed_mmapped_chunk"), (528_384, "freed_mmapped_chunk"),
                (1_052_672, "freed_mmapped_chunk"), (4_198_400, "freed_mmapped_chunk"),
            ]),
        // 64 KiB: 100,000 B is mapped too; 65,536 B still comes from the top chunk, which could serve it.
        Scenario(name: "mallopt", mappedChunks: 9, mappedBytes: 6_619_136, thresholdChanges: [(65_536, "mallopt")]),
        // The freed 1 MiB chunk moved the threshold to 1 MiB + 4 KiB: only the 4 MiB block is mapped.
        Scenario(
            name: "dynamic", mappedChunks: 1, mappedBytes: 4_198_400,
            thresholdChanges: [(1_052_672, "freed_mmapped_chunk"), (4_198_400, "freed_mmapped_chunk")]),
    ]

    @Test(arguments: scenarios) func mmapSplitAndUsableSizesMatchGlibc(_ scenario: Scenario) throws {
        let scratch = try Scratch()
        let (result, trace, own) = try traceChunks(scenario.name, in: scratch)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try String(contentsOfFile: own, encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: " ").map(String.init)
        }
        let blocks = lines.filter { $0.count == 2 }.compactMap { line in
            Int(line[0]).flatMap { a in Int(line[1]).map { (a, $0) } }
        }
        #expect(blocks.count == 16)
        let mallinfo = try #require(lines.first { $0.first == "m" })
        let (hblks, hblkhd) = (Int(mallinfo[1]) ?? -1, Int(mallinfo[2]) ?? -1)
        #expect(hblks == scenario.mappedChunks && hblkhd == scenario.mappedBytes, "glibc says \(hblks), \(hblkhd)")

        // Every block's usable size, as the trace recorded it (the last 16 allocations are the fixture's blocks).
        let reader = try TraceReader(path: trace)
        #expect(reader.allocator?.isGlibc == true && reader.allocator?.recordsChunkFlags == true)
        var allocations: [AllocatorEvent] = []
        reader.forEachEvent { if $0.kind == .allocation { allocations.append($0) } }
        let traced = allocations.suffix(16)
        #expect(traced.map { Int($0.size) } == blocks.map(\.0))
        #expect(traced.map { $0.usableSize.map(Int.init) ?? -1 } == blocks.map(\.1))
        let mapped = traced.filter { $0.chunk.contains(.mmapped) }
        #expect(mapped.count == hblks)
        #expect(mapped.reduce(0) { $0 + Int($1.usableSize ?? 0) + 16 } == hblkhd)

        // The report: at the heap's peak all 16 are live, so its mmap figures are mallinfo2's.
        let view = try jsonReport(trace, arguments: ["--allocator"]).object("allocator")
        let atPeak = view.object("at_heap_peak").object("live").object("mmap")
        #expect(atPeak.integer("calls") == hblks && atPeak.integer("chunk_bytes") == hblkhd)
        let threshold = view.object("mmap_threshold")
        #expect(threshold.integer("initial_bytes") == 131_072)
        let changes = threshold.objects("changes")
        #expect(changes.map { $0.integer("threshold_bytes") ?? 0 } == scenario.thresholdChanges.map(\.bytes))
        #expect(changes.map { $0.string("cause") ?? "" } == scenario.thresholdChanges.map(\.cause))
        #expect((threshold["dynamic_at_end"] as? Bool) == (scenario.name != "mallopt"))
    }

    /// glibc maps its large chunks through its internal __mmap, not the exported mmap: under --mmap the seven
    /// mmapped chunks of `split` are blocks, and none of them is a mapping of the program's own.
    @Test func mallocsOwnMappingsAreNotTheProgramsOwn() throws {
        let scratch = try Scratch()
        let trace = scratch.path("split-mmap.mtrace")
        let result = try runProgram(
            Products.cli, ["run", "--mmap", "-o", trace, "--", Products.fixture("chunks"), "split", scratch.path("t")])
        #expect(result.status == 0, "\(result.stderr)")
        let view = try jsonReport(trace, arguments: ["--allocator"]).object("allocator")
        #expect(view.object("served_from").object("mmap").integer("calls") == 7)
        #expect(view.object("mappings").integer("mmap_calls") == 0)
    }

    /// The environment sets glibc's threshold before any mallopt: the ALLOCATOR record starts from it, fixed.
    @Test func theEnvironmentsThresholdIsTheStart() throws {
        let scratch = try Scratch()
        let (result, trace, own) = try traceChunks(
            "split", in: scratch, environment: ["MALLOC_MMAP_THRESHOLD_": "65536"])
        #expect(result.status == 0, "\(result.stderr)")
        let glibc = try String(contentsOfFile: own, encoding: .utf8)
        #expect(glibc.hasSuffix("m 9 6619136\n"), "\(glibc)")
        let view = try jsonReport(trace, arguments: ["--allocator"]).object("allocator")
        let threshold = view.object("mmap_threshold")
        #expect(threshold.integer("initial_bytes") == 65_536 && threshold.objects("changes").isEmpty)
        #expect((threshold["dynamic_at_end"] as? Bool) == false)
        let atPeak = view.object("at_heap_peak").object("live").object("mmap")
        #expect(atPeak.integer("calls") == 9 && atPeak.integer("chunk_bytes") == 6_619_136)
    }

    @Test func textNamesTheSplitAndTheCheapWins() throws {
        let scratch = try Scratch()
        let (result, trace, _) = try traceChunks("split", in: scratch)
        #expect(result.status == 0, "\(result.stderr)")
        let text = try runProgram(Products.cli, ["report", trace, "--allocator", "--sections", "summary"]).stdout
        #expect(text.contains("mmap (own pages)           7 calls"), "\(text)")
        #expect(text.contains("mmap threshold   128.0 KiB at start; 132.0 KiB at"), "\(text)")
        // 25 B takes a 48-byte chunk (40 usable) where 24 B would take 32; 131,056 B is 8 B above the threshold.
        #expect(text.contains("1 call: 25 B takes 40 usable; 24 B would take a chunk 16 B smaller"), "\(text)")
        #expect(text.contains("131,056 B is 8 B above the mmap threshold (128.0 KiB)"), "\(text)")
        // The default report does not change.
        let plain = try runProgram(Products.cli, ["report", trace, "--sections", "summary"]).stdout
        #expect(!plain.contains("Allocator:"))
    }

    @Test func theHTMLReportHasThePanelOnlyWhenAsked() throws {
        let scratch = try Scratch()
        let (result, trace, _) = try traceChunks("split", in: scratch)
        #expect(result.status == 0, "\(result.stderr)")
        let page = try runProgram(Products.cli, ["report", trace, "--allocator", "--format", "html"]).stdout
        #expect(page.contains("<section id=\"allocator\">") && page.contains("id=\"allocator-chart\""))
        #expect(page.contains("<td>mmap (own pages)</td><td class=\"num\">7</td>"), "\(page)")
        let plain = try runProgram(Products.cli, ["report", trace, "--format", "html"]).stdout
        #expect(!plain.contains("id=\"allocator\""))
    }

    /// The program's own calls under --mmap: anonymous mappings with stacks, partial unmaps, mremap, sbrk; not
    /// the file mapping, not a brk that did not move the break.
    @Test func theProgramsOwnMappingsAreReplayed() throws {
        let scratch = try Scratch()
        let trace = scratch.path("mappings.mtrace")
        let result = try runProgram(
            Products.cli,
            ["run", "--mmap", "-o", trace, "--", Products.fixture("chunks"), "mappings", scratch.path("none")])
        #expect(result.status == 0, "\(result.stderr)")
        let mappings = try jsonReport(trace, arguments: ["--allocator"]).object("allocator").object("mappings")
        #expect(mappings.integer("mmap_calls") == 2 && mappings.integer("munmap_calls") == 3)
        #expect(mappings.integer("mremap_calls") == 1 && mappings.integer("break_moves") == 2)
        #expect(mappings.integer("break_bytes") == 0)
        #expect(mappings.integer("live_bytes_at_end") == 2 << 20)
        #expect(mappings.integer("peak_bytes") == (2 << 20) + 4096)
        let cause = try #require(mappings.objects("causes").first)
        #expect(cause.string("cause") == "direct mmap from mappings")
        let line = try markedLine("mappings", in: "chunks.c")
        let first = cause.objects("sites").first?.objects("stack").first
        #expect(first?.integer("line") == line && first?.string("function") == "mappings")
        // Without --mmap nothing of it is recorded.
        let (plain, plainTrace, _) = try traceChunks("mappings", in: scratch)
        #expect(plain.status == 0)
        #expect(try jsonReport(plainTrace, arguments: ["--allocator"]).object("allocator")["mappings"] is NSNull)
    }

    @Test func aSecondThreadAllocatesFromAThreadArena() throws {
        let scratch = try Scratch()
        let (result, trace, _) = try traceChunks("thread", in: scratch)
        #expect(result.status == 0, "\(result.stderr)")
        let threads = try jsonReport(trace, arguments: ["--allocator"]).object("allocator").objects("per_thread")
        let arenas = threads.map { $0.object("served_from").object("thread_arenas").integer("calls") ?? -1 }
        #expect(arenas.contains(10), "\(threads)")
        // 100 B: a 112-byte chunk, 104 usable, all of it derived (no CHUNK_INFO after the arena's first block).
        let worker = try #require(
            threads.first { $0.object("served_from").object("thread_arenas").integer("calls") == 10 })
        #expect(worker.object("served_from").object("thread_arenas").integer("usable_bytes") == 1040)
    }

    /// jemalloc preloaded after the tracer serves the calls: no chunk flags, but its own usable sizes (its size
    /// classes: 100 B takes 112, 100,000 B takes 114,688), as its malloc_usable_size tells the fixture.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: AllocatorViewTests.jemalloc)))
    func anotherAllocatorsUsableSizes() throws {
        let scratch = try Scratch()
        let own = scratch.path("jemalloc.txt")
        let trace = scratch.path("jemalloc.mtrace")
        let result = try runProgram(
            Products.fixture("chunks"), ["split", own],
            environment: ["LD_PRELOAD": "\(Products.preloadLibrary):\(Self.jemalloc)", "MALLOCTRACE_OUTPUT": trace])
        #expect(result.status == 0, "\(result.stderr)")
        let lines: [[Substring]] = try String(contentsOfFile: own, encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: " ")
        }
        let usable: [Int] = lines.filter { $0.count == 2 }.compactMap { Int($0[1]) }
        #expect(usable.count == 16 && usable.contains(114_688))
        let reader = try TraceReader(path: trace)
        #expect(reader.allocator?.isGlibc == false && reader.allocator?.recordsChunkFlags == false)
        var allocations: [AllocatorEvent] = []
        reader.forEachEvent { if $0.kind == .allocation { allocations.append($0) } }
        #expect(allocations.suffix(16).map { $0.usableSize.map(Int.init) ?? -1 } == usable)
        #expect(allocations.allSatisfy { !$0.chunk.contains(.mmapped) && !$0.chunk.contains(.nonMainArena) })
        let view = try jsonReport(trace, arguments: ["--allocator"]).object("allocator")
        #expect(view.object("allocator").string("name") == "other")
        #expect(view["mmap_threshold"] is NSNull)
    }

    static let jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

    @Test func usableSizesCanBeTurnedOff() throws {
        let scratch = try Scratch()
        let (result, trace, _) = try traceChunks("split", in: scratch, environment: ["MALLOCTRACE_USABLE": "0"])
        #expect(result.status == 0, "\(result.stderr)")
        let view = try jsonReport(trace, arguments: ["--allocator"]).object("allocator")
        #expect((view["usable_sizes_recorded"] as? Bool) == false)
        #expect(view.integer("unrecorded_allocations") == 16)
    }

    /// CPython with its default pymalloc: small objects live in 1 MiB arenas that pymalloc maps itself, so the
    /// resident set is far above the live malloc heap; with --mmap the report names the arenas and their stacks.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")))
    func pymallocArenasExplainTheGap() throws {
        let scratch = try Scratch()
        let script = scratch.path("objects.py")
        // 200,000 tuples of an int and a str: ~25 MiB of small objects, all in arenas; os._exit keeps them mapped at
        // the end (no interpreter teardown).
        try "import os\nobjects = [(i, str(i)) for i in range(200000)]\nos._exit(0)\n".write(
            toFile: script, atomically: true, encoding: .utf8)
        let python = URL(fileURLWithPath: "/usr/bin/python3").resolvingSymlinksInPath().path
        let trace = scratch.path("python.mtrace")
        let run = try runProgram(Products.cli, ["run", "--mmap", "-o", trace, "--", python, script])
        #expect(run.status == 0, "\(run.stderr)")
        let view = try jsonReport(trace, arguments: ["--allocator"]).object("allocator")
        let end = try #require(view.objects("rss_gap").first { $0.string("moment") == "end" })
        let live = try #require(end.integer("live_requested_bytes"))
        let resident = try #require(end.integer("rss_bytes"))
        #expect(resident > live + 20 << 20, "RSS \(resident), live malloc heap \(live)")
        let direct = end.objects("parts").first { $0.string("cause") == "direct_mappings" }?.integer("bytes") ?? 0
        #expect(direct >= 20 << 20, "direct mappings \(direct)")
        let causes = end.objects("mapping_causes")
        #expect(causes.first?.string("cause") == "CPython pymalloc arenas", "\(causes)")
        #expect((causes.first?.integer("bytes") ?? 0) >= 20 << 20)
        let arenas = try #require(view.object("mappings").objects("causes").first)
        #expect(arenas.string("cause") == "CPython pymalloc arenas")
        let sites = arenas.objects("sites")
        #expect(
            !sites.isEmpty
                && sites.allSatisfy { $0.integer("typical_length") == 1 << 20 && !$0.objects("stack").isEmpty })

        let text = try runProgram(Products.cli, ["report", trace, "--allocator", "--sections", "summary"]).stdout
        #expect(text.contains("CPython pymalloc arenas"), "\(text)")
    }
}
