import Foundation
import MallocTraceSymbolication
import Testing

/// Frames in reports: function, file:line and inlined calls from llvm-symbolizer, demangled C++ and Swift
/// names, allocator frames folded, and names from symbol tables when there is no symbolizer or no symbols.
@Suite(.serialized) struct SymbolizationTests {
    /// Every llvm-symbolizer this machine has among the ones users would get: Debian's and the toolchain's.
    static let symbolizers: [String] = {
        var found = ["/usr/bin/llvm-symbolizer-14", "/usr/bin/llvm-symbolizer"].filter {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        if let toolchain = SymbolizerLocator.toolchainSymbolizer() { found.append(toolchain) }
        return Array(Set(found.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path })).sorted()
    }()

    @Test(arguments: symbolizers)
    func inlinedHelperHasItsFileAndLine(symbolizer: String) throws {
        let scratch = try Scratch()
        let trace = try traceProgram(Products.fixture("inlined-O2"), in: scratch)
        let report = try jsonReport(trace, arguments: ["--symbolizer", symbolizer])
        let expected: [(String, Int, Bool)] = [
            ("make_record", try markedLine("helper-malloc", in: "inlined-O2.c"), true),
            ("build_records", try markedLine("build-call", in: "inlined-O2.c"), false),
            ("main", try markedLine("main-call", in: "inlined-O2.c"), false),
        ]
        for section in ["leaks", "peak_contributors"] {
            let sites = report.objects(section)
            try #require(sites.count == 1, "\(section): \(sites)")
            #expect(sites[0].integer("bytes") == 400)
            #expect(sites[0].integer("blocks") == 4)
            let frames = sites[0].objects("stack")
            try #require(frames.count >= 3)
            for (frame, (function, line, inlined)) in zip(frames, expected) {
                #expect(frame["function"] as? String == function)
                #expect((frame["file"] as? String)?.hasSuffix("Tests/Fixtures/inlined-O2.c") == true)
                #expect(frame.integer("line") == line, "\(function)")
                #expect(frame["inlined"] as? Bool == inlined)
            }
            // The inlined call and its caller stand for one return address.
            #expect(frames[0]["address"] as? String == frames[1]["address"] as? String)
        }
        #expect(report.object("symbolization")["backend"] as? String == "llvm-symbolizer")
    }

    @Test func cPlusPlusNamesAreDemangledWithTemplatesAndNamespaces() throws {
        let scratch = try Scratch()
        let trace = try traceProgram(Products.fixture("names"), in: scratch)
        let leaks = try jsonReport(trace, arguments: ["--sections", "leaks"]).objects("leaks")
        let pool = try #require(leaks.first { $0.integer("bytes") == 3072 })
        #expect(pool.integer("blocks") == 3)
        #expect(
            functions(pool).prefix(3) == [
                "(anonymous namespace)::Pool<(anonymous namespace)::Widget, 3>::grow()", "app::leak_widgets()", "main",
            ])
        #expect((pool.objects("stack").first?["file"] as? String)?.hasSuffix("names.cpp") == true)
        let object = try #require(leaks.first { $0.integer("bytes") == 24 })
        #expect(topFunction(object) == "app::leak_widgets()")
        // The vector's buffer: std::allocator and _Vector_base::_M_allocate are folded, the vector stays.
        let buffer = try #require(leaks.first { $0.integer("bytes") == 32 })
        #expect(topFunction(buffer)?.contains("std::vector<(anonymous namespace)::Widget*") == true)
        #expect(functions(buffer).contains("(anonymous namespace)::Pool<(anonymous namespace)::Widget, 3>::grow()"))

        let kept = try jsonReport(trace, arguments: ["--sections", "leaks", "--keep-allocator-frames"]).objects("leaks")
        let keptPool = try #require(kept.first { $0.integer("bytes") == 3072 })
        // libstdc++'s operator new[] tail-calls operator new, so only the latter is on the stack.
        #expect(
            functions(keptPool).prefix(2) == [
                "operator new(unsigned long)", "(anonymous namespace)::Pool<(anonymous namespace)::Widget, 3>::grow()",
            ])
    }

    @Test func swiftNamesAreDemangledAndAllocObjectIsFolded() throws {
        let scratch = try Scratch()
        let trace = try traceProgram(Products.fixture("objects"), in: scratch)
        let leaks = try jsonReport(trace, top: 100, arguments: ["--sections", "leaks"]).objects("leaks")
        let nodes = try #require(leaks.first { functions($0).contains("Fixture.leakNodes(count: Swift.Int) -> ()") })
        #expect(nodes.integer("bytes") == 120)
        #expect(nodes.integer("blocks") == 5)
        // The compiler-made __allocating_init is an allocation layer too: the program's own line comes first.
        #expect(topFunction(nodes) == "Fixture.leakNodes(count: Swift.Int) -> ()")
        let allNames = leaks.flatMap(functions).compactMap { $0 }
        #expect(!allNames.contains { $0.contains("__allocating_init") })
        #expect(!allNames.contains("swift_allocObject"))
        #expect(!allNames.contains("swift_slowAlloc"))

        let kept = try jsonReport(trace, top: 100, arguments: ["--sections", "leaks", "--keep-allocator-frames"])
            .objects("leaks")
        let keptNodes = try #require(kept.first { functions($0).contains("Fixture.leakNodes(count: Swift.Int) -> ()") })
        #expect(functions(keptNodes).prefix(2) == ["swift_slowAlloc", "swift_allocObject"])
        #expect(
            functions(keptNodes).contains { $0?.hasPrefix("Fixture.Node.__allocating_init(value: Swift.Int)") == true })
    }

    @Test(arguments: ["auto", "none"])
    func strippedBinaryNamesComeFromItsDynamicSymbols(symbolizer: String) throws {
        let scratch = try Scratch()
        let trace = try traceProgram(Products.fixture("symbols-stripped"), in: scratch)
        let arguments = ["--sections", "leaks"] + (symbolizer == "none" ? ["--symbolizer", "none"] : [])
        let report = try jsonReport(trace, arguments: arguments)
        let leaks = report.objects("leaks")
        let exported = try #require(leaks.first { $0.integer("bytes") == 64 })
        #expect(topFunction(exported) == "exported_leak")
        #expect(exported.objects("stack").first?["file"] is NSNull)
        let hidden = try #require(leaks.first { $0.integer("bytes") == 48 })
        #expect(functions(hidden).prefix(2) == [nil, "exported_leak"])
        // The report says which frame could not be resolved and why (libc's frames may be unresolved too
        // when its debug file is not installed).
        let notes = report.object("symbolization")
        #expect(notes.integer("unresolved").map { $0 >= 1 } == true)
        let problems = notes.objects("problems")
        #expect(
            problems.contains {
                ($0["module"] as? String)?.hasSuffix("fixture-symbols-stripped") == true
                    && $0["reason"] as? String == "the file is stripped and no debug file was found"
                    && $0.integer("addresses") == 1
            })
        let text = try runProgram(Products.cli, ["report", trace, "--sections", "leaks"] + arguments.dropFirst(2))
        #expect(text.stdout.contains(" unresolved (shown as module+0xoffset)"))
        #expect(
            text.stdout.contains(
                "fixture-symbols-stripped: the file is stripped and no debug file was found (1 address)"))
    }

    @Test func withoutASymbolizerNamesComeFromSymbolTables() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let environment = ["MALLOCTRACE_SYMBOLIZER": "none"]
        let report = try jsonReport(trace, arguments: ["--sections", "leaks"], environment: environment)
        let leaks = report.objects("leaks")
        #expect(leaks.map(topFunction) == ["leak_hundreds", "leak_calloc_33"])
        #expect(leaks.first?.objects("stack").first?["file"] is NSNull)
        #expect(report.object("symbolization")["backend"] as? String == "symbol-tables")
        // libc.so.6 is stripped; with its debug file installed (libc6-dbg), the static function that calls
        // main is named from the debug file's .symtab, found by build-id.
        let libc = "/lib/x86_64-linux-gnu/libc.so.6"
        if let info = ELFFileInfo(path: libc), DebugFiles().file(buildID: info.buildID) != nil {
            #expect(functions(leaks[0]).contains("__libc_start_call_main"))
        }
        let text = try runProgram(Products.cli, ["report", trace, "--sections", "leaks"], environment: environment)
        #expect(text.stdout.contains("leak_hundreds (fixture-patterns+0x"))
        #expect(text.stdout.contains("Frames: symbol tables only, names without file and line"))
    }

    @Test func unloadedLibrariesStillSymbolize() throws {
        let scratch = try Scratch()
        let library = Products.fixture("libleaky") + ".so"
        let trace = try traceProgram(Products.fixture("dlclose"), [library], in: scratch)
        let leaks = try jsonReport(trace, arguments: ["--sections", "leaks"]).objects("leaks")
        let site = try #require(leaks.first { topFunction($0) == "leak_in_library" })
        #expect(site.integer("bytes") == 120)
        #expect(site.integer("blocks") == 3)
        let frame = try #require(site.objects("stack").first)
        #expect((frame["module"] as? String)?.hasSuffix("fixture-libleaky.so") == true)
        #expect((frame["file"] as? String)?.hasSuffix("libleaky.c") == true)
        #expect(functions(site)[1] == "main")
    }

    /// A module whose file was replaced after tracing must not be named from the new file.
    @Test func replacedOrMissingModulesAreReportedNotMisnamed() throws {
        let scratch = try Scratch()
        let program = scratch.path("program")
        try FileManager.default.copyItem(atPath: Products.fixture("patterns"), toPath: program)
        let trace = try traceProgram(program, ["leaks"], in: scratch)
        try FileManager.default.removeItem(atPath: program)
        try FileManager.default.copyItem(atPath: Products.fixture("inlined-O2"), toPath: program)
        let replaced = try jsonReport(trace, arguments: ["--sections", "leaks"])
        #expect(replaced.objects("leaks").first.map(functions)?.prefix(3) == [nil, nil, nil])
        #expect(
            replaced.object("symbolization").objects("problems").contains {
                $0["module"] as? String == program && ($0["reason"] as? String)?.contains("build-id differs") == true
            })
        try FileManager.default.removeItem(atPath: program)
        let missing = try jsonReport(trace, arguments: ["--sections", "leaks"])
        #expect(
            missing.object("symbolization").objects("problems").contains {
                $0["module"] as? String == program && $0["reason"] as? String == "the file is gone"
            })
    }
}
