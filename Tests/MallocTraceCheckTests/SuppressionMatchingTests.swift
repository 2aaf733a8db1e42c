import MallocTraceFormat
import MallocTraceReports
import Testing

@testable import MallocTraceCheck

private func suppressions(_ text: String) throws -> SuppressionSet {
    SuppressionSet(try SuppressionParser.parse(text, path: "t.supp"))
}

@Suite struct SuppressionMatchingTests {
    @Test(arguments: [
        ("make_node", true), ("make", true), ("^make_node$", true), ("^make$", false), ("node$", true),
        ("^main", true), ("m*node", true), ("^leak", false), ("leak.c", true), ("/src/app/", true),
        ("^/usr/bin/app$", true), ("libfoo", false), ("nothere", false),
    ])
    func leakSanitizerPatterns(pattern: String, matches: Bool) throws {
        let set = try suppressions("leak:\(pattern)")
        #expect((set.firstMatch(for: simpleFinding("make_node")) != nil) == matches)
    }

    @Test func leakSanitizerLooksAtEveryFrame() throws {
        let deep = finding([frame("a"), frame("b"), frame("c", module: "/usr/lib/libdeep.so"), frame("main")])
        #expect(try suppressions("leak:libdeep.so").firstMatch(for: deep) == 0)
        #expect(try suppressions("leak:^c$").firstMatch(for: deep) == 0)
    }

    @Test func memcheckStackStartsWithTheAllocationFunction() {
        let stack = MemcheckStack.frames(
            of: finding(allocation: .calloc, [frame("tracer", module: "/x/libmalloctrace.so"), frame("f")]))
        #expect(stack.map(\.function) == ["calloc", "f"])
        #expect(stack.first?.object == MemcheckStack.preloadObject)
        let cxx = MemcheckStack.frames(
            of: finding([frame("operator new(unsigned long)", module: "/usr/lib/libstdc++.so.6"), frame("f")]))
        #expect(cxx.map(\.function) == ["operator new(unsigned long)", "f"])
        #expect(cxx.first?.mangledNames == ["_Znwm", "operator new[](unsigned long)", "_Znam"])
        // libstdc++'s new[] calls new: valgrind shows only the new[] the program called.
        let array = MemcheckStack.frames(
            of: finding([
                frame("operator new(unsigned long)", module: "/usr/lib/libstdc++.so.6"),
                frame("operator new[](unsigned long)", module: "/usr/lib/libstdc++.so.6"), frame("f"),
            ]))
        #expect(array.map(\.function) == ["operator new[](unsigned long)", "f"])
    }

    @Test(arguments: [
        ("fun:malloc\nfun:make_node\nfun:main", true),
        ("fun:malloc\nfun:make_node", true),
        ("fun:malloc", true),
        ("fun:make_node", false),
        ("...\nfun:make_node", true),
        ("...\nfun:main", true),
        ("fun:malloc\n...\nfun:main\n...", true),
        ("obj:*vgpreload*\nfun:make_?ode", true),
        ("obj:*vgpreload_memcheck*\nobj:/usr/bin/app\nobj:/usr/bin/*", true),
        ("fun:*alloc\nsrc:leak.c:12\nsrc:leak.c", true),
        ("fun:*alloc\nsrc:leak.c:13", false),
        ("fun:calloc", false),
        ("fun:malloc\nfun:make_node\nfun:main\nfun:extra", false),
        ("fun:mall", false),
    ])
    func memcheckBlocks(frames: String, matches: Bool) throws {
        let set = try suppressions("{\n  n\n  Memcheck:Leak\n\(frames)\n}")
        #expect((set.firstMatch(for: simpleFinding("make_node")) != nil) == matches)
    }

    @Test func memcheckKindsMustAgree() throws {
        let set = try suppressions("{\n n\n Memcheck:Leak\n match-leak-kinds: possible,reachable\n fun:malloc\n}")
        #expect(set.firstMatch(for: simpleFinding("f", kind: .definite)) == nil)
        #expect(set.firstMatch(for: simpleFinding("f", kind: .possible)) == 0)
    }

    @Test func operatorNewMatchesByDemangledOrMangledName() throws {
        let leak = finding([
            frame("operator new(unsigned long)", module: "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
            frame("Widget::make()", file: "/src/w.cpp", line: 4), frame("main"),
        ])
        for body in ["fun:_Znwm\nfun:Widget::make()", "fun:operator new*\nfun:Widget::*", "fun:malloc*\n...", "..."] {
            let matched = try suppressions("{\n n\n Memcheck:Leak\n\(body)\n}").firstMatch(for: leak) != nil
            #expect(matched == !body.hasPrefix("fun:malloc"), "\(body)")
        }
    }

    @Test func unknownFramesMatchStarAndQuestionMarks() throws {
        let leak = finding([frame(nil, module: nil), frame("main")])
        #expect(try suppressions("{\n n\n Memcheck:Leak\n fun:malloc\n fun:*\n obj:*\n}").firstMatch(for: leak) == 0)
        #expect(
            try suppressions("{\n n\n Memcheck:Leak\n fun:malloc\n fun:???\n fun:main\n}").firstMatch(for: leak) == 0)
        #expect(try suppressions("{\n n\n Memcheck:Leak\n fun:malloc\n obj:*\n fun:main\n}").firstMatch(for: leak) == 0)
    }

    @Test func applyPartitionsAndCountsTheFirstMatch() throws {
        let set = try suppressions("leak:make_node\nleak:^main$\nleak:unused")
        let findings = [
            simpleFinding("make_node", bytes: 10), simpleFinding("other", bytes: 20),
            simpleFinding("make_node", bytes: 30), finding(bytes: 7, [frame("lonely")]),
        ]
        let outcome = set.apply(to: findings)
        #expect(outcome.kept.map(\.bytes) == [7])
        #expect(outcome.suppressed.map(\.bytes) == [10, 20, 30])
        #expect(
            outcome.uses == [
                SuppressionUse(name: "leak:make_node", origin: "t.supp:1", findings: 2, bytes: 40, blocks: 2),
                SuppressionUse(name: "leak:^main$", origin: "t.supp:2", findings: 1, bytes: 20, blocks: 1),
            ])
    }

    @Test func defaultsCoverTheRuntimeBlocksAndNotTheProgram() throws {
        let set = try SuppressionSet.load(files: [])
        let ldso = "/lib64/ld-linux-x86-64.so.2"
        let dtv = finding(
            allocation: .calloc, [frame("_dl_allocate_tls", module: ldso), frame("pthread_create@@GLIBC_2.34")])
        let tls = finding([frame("__tls_get_addr", module: ldso), frame("main")])
        let ldsoDirect = finding([frame(nil, module: ldso), frame("dlopen")])
        let stdio = finding(
            .reachable, [frame("_IO_file_doallocate", module: "/lib/libc.so.6"), frame("printf"), frame("main")])
        let pool = finding(
            .reachable,
            [frame(nil, module: "/usr/lib/libstdc++.so.6"), frame("call_init", module: ldso), frame("_dl_init")])
        for leak in [dtv, tls, ldsoDirect, stdio, pool] {
            #expect(set.firstMatch(for: leak) != nil, "\(leak.allFrames)")
        }
        let stdioDefinite = finding(
            .definite, [frame("_IO_file_doallocate", module: "/lib/libc.so.6"), frame("printf"), frame("main")])
        let userViaDlopen = finding([frame("plugin_init", module: "/x/plugin.so"), frame("_dl_init", module: ldso)])
        let reachableString = finding(
            .reachable,
            [
                frame("operator new(unsigned long)", module: "/usr/lib/libstdc++.so.6"),
                frame("std::__cxx11::basic_string<char>::_M_mutate", module: "/usr/lib/libstdc++.so.6"),
                frame("std::__cxx11::basic_string<char>::_M_append", module: "/usr/lib/libstdc++.so.6"), frame("main"),
            ])
        for leak in [stdioDefinite, userViaDlopen, reachableString, simpleFinding("make_node")] {
            #expect(set.firstMatch(for: leak) == nil, "\(leak.allFrames)")
        }
        #expect(try SuppressionSet.load(files: [], includeDefaults: false).suppressions.isEmpty)
    }
}
