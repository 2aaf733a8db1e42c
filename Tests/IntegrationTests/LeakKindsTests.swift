import Foundation
import Testing

/// The exit-time leak scan against its two oracles: every scenario of `Tests/Fixtures/leakkinds.c` is traced with
/// `malloctrace run --leak-kinds`, and, where installed, run under LeakSanitizer (the Swift toolchain's
/// `clang -fsanitize=leak`) and valgrind's memcheck. Each distinctive block (its size is its name) must get the kind
/// each tool gives it in the table below. Where the oracles disagree, each is held to its own answer and ours to the
/// one we follow (docs/leak-kinds.md says why).
@Suite struct LeakKindsTests {
    /// What LeakSanitizer prints for a block: a direct or indirect leak, or nothing (reachable, interior pointers
    /// included, or no check at all, as at `_exit`).
    enum LeakSanitizerAnswer: String, Sendable {
        case direct = "Direct"
        case indirect = "Indirect"
        case notReported
    }

    /// memcheck's loss record kind of a block.
    enum MemcheckAnswer: String, Sendable {
        case definitelyLost = "definitely lost"
        case indirectlyLost = "indirectly lost"
        case possiblyLost = "possibly lost"
        case stillReachable = "still reachable"
    }

    struct Block: Sendable {
        var size: Int
        var ours: String
        var leakSanitizer: LeakSanitizerAnswer
        var memcheck: MemcheckAnswer
    }

    struct Scenario: Sendable, CustomTestStringConvertible {
        var name: String
        var blocks: [Block]
        var testDescription: String { name }
    }

    private static func reachable(_ size: Int) -> Block {
        Block(size: size, ours: "reachable", leakSanitizer: .notReported, memcheck: .stillReachable)
    }

    // Measured with LLVM 21's LeakSanitizer and valgrind 3.19 on glibc 2.36.
    static let scenarios: [Scenario] = [
        Scenario(name: "global", blocks: [reachable(1001)]),
        Scenario(name: "library-bss", blocks: [reachable(1002)]),
        Scenario(name: "thread-stack", blocks: [reachable(1003)]),
        Scenario(name: "registers", blocks: [reachable(1004)]),
        Scenario(name: "tls", blocks: [reachable(1005), reachable(1015)]),
        Scenario(name: "static-local", blocks: [reachable(1006)]),
        // LeakSanitizer counts an interior pointer as a reference; memcheck and we call the block possibly lost.
        Scenario(
            name: "interior",
            blocks: [Block(size: 1007, ours: "possible", leakSanitizer: .notReported, memcheck: .possiblyLost)]),
        Scenario(
            name: "xor",
            blocks: [Block(size: 1008, ours: "definite", leakSanitizer: .direct, memcheck: .definitelyLost)]),
        Scenario(
            name: "chain",
            blocks: [
                Block(size: 1009, ours: "definite", leakSanitizer: .direct, memcheck: .definitelyLost),
                Block(size: 1010, ours: "indirect", leakSanitizer: .indirect, memcheck: .indirectlyLost),
                Block(size: 1011, ours: "indirect", leakSanitizer: .indirect, memcheck: .indirectlyLost),
            ]),
        // A rootless cycle: LeakSanitizer calls both members indirect (no direct leak at all); memcheck and we make
        // the first one in address order the definite leader.
        Scenario(
            name: "cycle",
            blocks: [
                Block(size: 1012, ours: "definite", leakSanitizer: .indirect, memcheck: .definitelyLost),
                Block(size: 1013, ours: "indirect", leakSanitizer: .indirect, memcheck: .indirectlyLost),
            ]),
        Scenario(
            name: "large",
            blocks: [Block(size: 1_048_576, ours: "definite", leakSanitizer: .direct, memcheck: .definitelyLost)]),
        // LeakSanitizer checks at exit only; _exit skips it.
        Scenario(
            name: "underscore-exit",
            blocks: [Block(size: 1014, ours: "definite", leakSanitizer: .notReported, memcheck: .definitelyLost)]),
        Scenario(name: "clean", blocks: []),
        // LeakSanitizer scans no anonymous mapping (custom allocators must register theirs); memcheck scans them all,
        // and so do we.
        Scenario(
            name: "mmap-root",
            blocks: [Block(size: 1016, ours: "reachable", leakSanitizer: .direct, memcheck: .stillReachable)]),
        Scenario(
            name: "exited-thread",
            blocks: [Block(size: 1017, ours: "definite", leakSanitizer: .direct, memcheck: .definitelyLost)]),
        Scenario(name: "blocked-signal", blocks: [reachable(1018)]),
        // The process ends in the thread that outlived main: the scan must still see the mappings (/proc/self is
        // the exited main thread's view, an empty one).
        Scenario(
            name: "main-pthread-exit",
            blocks: [
                reachable(1019),
                Block(size: 1020, ours: "definite", leakSanitizer: .direct, memcheck: .definitelyLost),
            ]),
        // An interior pointer programs keep on purpose (a copy-on-write string's characters): memcheck's default
        // heuristic counts it as a pointer to the block, and so do we.
        Scenario(name: "kept-interior", blocks: [reachable(1049)]),
        // The scan's stop signal is not one the program uses: SIGPWR blocked and waited for stays the program's.
        Scenario(name: "sigwait-power", blocks: [reachable(1025)]),
        // exit() on an alternate signal stack: main's frames below still hold the block.
        Scenario(name: "altstack-exit", blocks: [reachable(1021), reachable(1022), reachable(1023)]),
        // Pointers at the last 8 bytes of blocks whose usable size is their size: where glibc's next chunk header
        // lies, and where its top-chunk pointer would point; from the program's own memory they are interior pointers.
        Scenario(
            name: "intrusive",
            blocks: [
                Block(size: 1032, ours: "possible", leakSanitizer: .notReported, memcheck: .possiblyLost),
                Block(size: 1048, ours: "possible", leakSanitizer: .notReported, memcheck: .possiblyLost),
            ]),
    ]

    private static func arguments(of scenario: Scenario) -> [String] {
        scenario.name == "library-bss" ? [scenario.name, Products.fixture("libleakroot.so")] : [scenario.name]
    }

    @Test(arguments: scenarios) func scanGivesTheKindWeFollow(_ scenario: Scenario) throws {
        let scratch = try Scratch()
        let trace = scratch.path("\(scenario.name).mtrace")  // traceFixture would name it after a library path
        let run = try runProgram(
            Products.cli,
            ["run", "--leak-kinds", "-o", trace, "--", Products.fixture("leakkinds")] + Self.arguments(of: scenario))
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonReport(
            trace, top: 1000, arguments: ["--leak-kinds", "all", "--sections", "summary,leaks", "--symbolizer", "none"])
        let scan = report.object("summary").object("leak_scan")
        #expect(scan.integer("threads_missed") == 0)
        var kinds: [Int: [String]] = [:]
        for site in report.objects("leaks") {
            guard let bytes = site.integer("bytes"), site.integer("blocks") == 1 else { continue }
            let kind = site.object("leak_kinds").filter { ($0.value as? [String: Any])?.integer("blocks") == 1 }
            kinds[bytes, default: []] += kind.map(\.key)
        }
        for block in scenario.blocks {
            #expect(kinds[block.size] == [block.ours], "block of \(block.size) B")
        }
        if scenario.name == "clean" {
            let totals = report.object("summary").object("leak_kinds")
            for kind in ["definite", "indirect", "possible"] {
                #expect(totals.object(kind).integer("blocks") == 0, "\(kind)")
            }
        }
    }

    @Test(
        .enabled(if: LeakSanitizer.binary != nil, "LeakSanitizer (clang -fsanitize=leak) is not available here"),
        arguments: scenarios)
    func leakSanitizerGivesItsOwnAnswer(_ scenario: Scenario) throws {
        let binary = try #require(LeakSanitizer.binary)
        let result = try runProgram(binary, Self.arguments(of: scenario))
        #expect(result.signal == nil)
        #expect(!result.stderr.contains("LeakSanitizer has encountered a fatal error"), "\(result.stderr)")
        let answers = Self.leakSanitizerAnswers(result.stderr)
        for block in scenario.blocks {
            #expect((answers[block.size] ?? .notReported) == block.leakSanitizer, "block of \(block.size) B")
        }
    }

    @Test(.enabled(if: Valgrind.path != nil, "valgrind is not installed"), arguments: scenarios)
    func memcheckGivesItsOwnAnswer(_ scenario: Scenario) throws {
        let valgrind = try #require(Valgrind.path)
        let result = try runProgram(
            valgrind,
            [
                "--leak-check=full", "--show-leak-kinds=all", "--errors-for-leak-kinds=none",
                Products.fixture("leakkinds"),
            ]
                + Self.arguments(of: scenario), timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        let answers = Self.memcheckAnswers(result.stderr)
        for block in scenario.blocks {
            #expect(answers[block.size] == block.memcheck, "block of \(block.size) B")
        }
    }

    /// "Direct leak of 1009 byte(s) in 1 object(s) allocated from:", by size (single-block records only).
    static func leakSanitizerAnswers(_ output: String) -> [Int: LeakSanitizerAnswer] {
        var answers: [Int: LeakSanitizerAnswer] = [:]
        for line in output.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count >= 8, words[1] == "leak", words[2] == "of", words[6] == "1",
                let answer = LeakSanitizerAnswer(rawValue: String(words[0])), let size = Int(words[3])
            else { continue }
            answers[size] = answer
        }
        return answers
    }

    /// "==1== 3,030 (1,009 direct, 2,021 indirect) bytes in 1 blocks are definitely lost in loss record 3 of 3"
    /// or "==1== 1,010 bytes in 1 blocks are indirectly lost in …", by the block's own (direct) size.
    static func memcheckAnswers(_ output: String) -> [Int: MemcheckAnswer] {
        var answers: [Int: MemcheckAnswer] = [:]
        for line in output.split(separator: "\n") {
            guard let bytes = line.range(of: " bytes in 1 blocks are "),
                let answer = [MemcheckAnswer.definitelyLost, .indirectlyLost, .possiblyLost, .stillReachable].first(
                    where: { line[bytes.upperBound...].hasPrefix($0.rawValue) })
            else { continue }
            var head = line[..<bytes.lowerBound].split(separator: " ").dropFirst()  // the "==pid==" prefix
            if let open = head.first(where: { $0.hasPrefix("(") }) { head = [open.dropFirst()] }
            guard let first = head.first, let size = Int(first.replacingOccurrences(of: ",", with: "")) else {
                continue
            }
            answers[size] = answer
        }
        return answers
    }
}

/// leakkinds.c built with `clang -fsanitize=leak`, once per test run; nil when no clang can build it or its
/// LeakSanitizer cannot stop the world here (it needs ptrace).
enum LeakSanitizer {
    static let binary: String? = build()

    private static func build() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates = ["/opt/swift/usr/bin/clang"] + path.split(separator: ":").map { "\($0)/clang" }
        guard let clang = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return nil
        }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/leakkinds.c").path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(
            "malloctrace-lsan-leakkinds-\(getpid())"
        ).path
        guard
            let compiled = try? runProgram(
                clang, ["-fsanitize=leak", "-g", "-O0", "-fno-builtin", "-pthread", source, "-ldl", "-o", output]),
            compiled.status == 0,
            let probe = try? runProgram(output, ["xor"]), probe.stderr.contains("Direct leak of 1008 byte(s)")
        else { return nil }
        return output
    }
}

enum Valgrind {
    static let path: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        return path.split(separator: ":").map { "\($0)/valgrind" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }()
}
