import MallocTraceFormat
import MallocTraceReports
import Testing

@testable import MallocTraceCheck

@Suite struct SuppressionParserTests {
    @Test func readsLeakSanitizerLines() throws {
        let text = """
            # a comment
            leak:make_node

              leak:^libfoo.so$  
            race:ignored_by_us
            called_from_lib:libbar.so
            """
        let suppressions = try SuppressionParser.parse(text, path: "lsan.supp")
        #expect(suppressions.map(\.name) == ["leak:make_node", "leak:^libfoo.so$"])
        #expect(suppressions.map(\.origin) == ["lsan.supp:2", "lsan.supp:4"])
    }

    @Test func readsMemcheckBlocks() throws {
        let text = """
            {
               my_leak
               Memcheck:Leak
               match-leak-kinds: definite,indirect
               fun:malloc
               ...
               obj:/usr/lib/libfoo.so*
               src:foo.c:12
               src:bar.c
            }
            {
               cond
               Memcheck:Cond
               fun:whatever
            }
            {
               helgrind
               Helgrind:Race
               fun:x
            }
            {
               all_kinds
               Memcheck,Addrcheck:Leak
               match-leak-kinds: all
               fun:*
            }
            """
        let suppressions = try SuppressionParser.parse(text, path: "vg.supp")
        #expect(suppressions.map(\.name) == ["my_leak", "all_kinds"])
        #expect(suppressions.map(\.origin) == ["vg.supp:1", "vg.supp:21"])
        let expected = MemcheckRule(
            kinds: [.definite, .indirect],
            frames: [
                .function("malloc"), .ellipsis, .object("/usr/lib/libfoo.so*"), .source(file: "foo.c", line: 12),
                .source(file: "bar.c", line: nil),
            ])
        #expect(suppressions.first?.rule == .memcheck(expected))
        #expect(
            suppressions.last?.rule == .memcheck(MemcheckRule(kinds: Set(LeakKind.allCases), frames: [.function("*")])))
    }

    @Test func blockWithoutKindsLineMatchesEveryKind() throws {
        let suppressions = try SuppressionParser.parse("{\n n\n Memcheck:Leak\n fun:malloc\n}\n", path: "x")
        #expect(suppressions.first?.rule == .memcheck(MemcheckRule(frames: [.function("malloc")])))
    }

    @Test(arguments: [
        ("leak:a\n{\n name\n Memcheck:Leak\n fun:malloc\n", "s.supp:2: unterminated block: no '}' before the end"),
        ("{\n", "s.supp:1: unterminated block: missing its name"),
        ("{\n name\n}\n", "s.supp:1: unterminated block: missing its 'TOOL:KIND' line"),
        ("{\n name\n Memcheck:Leak\n}\n", "s.supp:1: block 'name' has no 'fun:', 'obj:' or 'src:' line"),
        ("{\n name\n Memcheck:Leak\n bogus\n}\n", "s.supp:4: expected 'fun:', 'obj:', 'src:' or '...', found 'bogus'"),
        (
            "{\n n\n Memcheck:Leak\n match-leak-kinds: definite,lost\n fun:f\n}",
            "s.supp:4: unknown leak kind 'lost' (expected definite, indirect, possible, reachable, all or none)"
        ),
        ("\n\nnot a suppression\n", "s.supp:3: expected 'leak:PATTERN' or a '{' block, found 'not a suppression'"),
        ("leak:\n", "s.supp:1: empty pattern after 'leak:'"),
        ("}\n", "s.supp:1: '}' without a block to close"),
        ("{\n n\n Memcheck\n}", "s.supp:3: expected 'TOOL:KIND' (such as 'Memcheck:Leak'), found 'Memcheck'"),
    ])
    func rejectsMalformedFiles(text: String, message: String) {
        #expect(throws: CheckError.self) { try SuppressionParser.parse(text, path: "s.supp") }
        do {
            _ = try SuppressionParser.parse(text, path: "s.supp")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func missingFileIsATypedError() {
        #expect {
            try SuppressionParser.parseFile(atPath: "/nonexistent/x.supp")
        } throws: { error in
            guard case .unreadableFile(let path, _) = error as? CheckError else { return false }
            return path == "/nonexistent/x.supp"
        }
    }

    @Test func defaultsAreNamedAndExplained() {
        let names = DefaultSuppression.all.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(DefaultSuppression.all.allSatisfy { !$0.reason.isEmpty && !$0.reason.contains("\n") })
        #expect(DefaultSuppression.all.allSatisfy { $0.suppression.origin == "built-in" })
    }
}
