import Foundation
import Testing

/// `malloctrace check` as a CI job uses it: real programs in C, C++, Swift and Python pass with the default
/// settings, one leaking line fails them with LeakSanitizer's status and names that line first.
@Suite(.serialized) struct CheckTests {
    /// `check --format json -- COMMAND`: (exit status, parsed JSON on stderr, stdout of the program).
    private func check(_ command: [String], options: [String] = [], environment: [String: String] = [:]) throws
        -> (status: Int32, json: [String: Any], stdout: String, stderr: String)
    {
        let result = try runProgram(
            Products.cli, ["check", "--format", "json"] + options + ["--"] + command, environment: environment,
            timeout: 120)
        // The findings go to stderr when a command ran, as one JSON document from a line "{" to a line "}";
        // around it are the tool's own "malloctrace:" lines (and, under tools/sanitizers.sh, LeakSanitizer's
        // list of the suppressions it used).
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        let first = lines.firstIndex { $0 == "{" } ?? lines.endIndex
        let last = lines.lastIndex { $0 == "}" } ?? lines.startIndex
        let document = first <= last ? lines[first...last].joined(separator: "\n") : ""
        let object = try? JSONSerialization.jsonObject(with: Data(document.utf8))
        return (result.status, object as? [String: Any] ?? [:], result.stdout, result.stderr)
    }

    private func findings(_ json: [String: Any]) -> [[String: Any]] {
        json.objects("processes").flatMap { $0.objects("findings") }
    }

    @Test(arguments: ["gatec", "gatecpp", "gateswift"])
    func aCleanProgramPasses(fixture: String) throws {
        let result = try check([Products.fixture(fixture), "clean"])
        #expect(result.status == 0, "\(fixture): \(result.stderr)")
        #expect(findings(result.json).isEmpty)
        #expect(result.json.string("verdict") == "passed")
    }

    @Test(arguments: [
        ("gatec", "gatec.c", "gatec-leak", 4_321), ("gatecpp", "gatecpp.cpp", "gatecpp-leak", 100),
        ("gateswift", "gateswift.swift", "gateswift-leak", -1),
    ])
    func oneLeakingLineFailsAndIsNamedFirst(fixture: String, source: String, mark: String, bytes: Int) throws {
        let result = try check([Products.fixture(fixture), "leak"])
        #expect(result.status == 23, "\(fixture): \(result.stderr)")
        let definite = findings(result.json).filter { $0["kind"] as? String == "definite" }
        #expect(definite.count == 1, "\(fixture): \(findings(result.json))")
        let first = try #require(definite.first?.objects("frames").first)
        #expect((first["file"] as? String)?.hasSuffix(source) == true, "\(first)")
        #expect(first.integer("line") == (try markedLine(mark, in: source)))
        if bytes > 0 { #expect(definite.first?.integer("bytes") == bytes) }
    }

    /// Wrappers that exec the real program (env, nice, a shell's exec): what the wrapper held went with its image.
    /// The wrapper's trace has no findings, and the program's own leak is still found in its trace.
    @Test func aWrapperThatExecsIsNotALeak() throws {
        let clean = try check(["/usr/bin/env", "MALLOCTRACE_TEST_WRAPPED=1", Products.fixture("gatec"), "clean"])
        #expect(clean.status == 0, "\(clean.stderr)")
        let processes = clean.json.objects("processes")
        #expect(processes.count == 2, "\(clean.stderr)")
        let wrapper = processes.filter { $0["replaced_by_exec"] as? Bool == true }
        #expect(wrapper.count == 1 && wrapper.first?.objects("findings").isEmpty == true, "\(processes)")
        // A wrapper that clears the environment (env -i) still execs a followed program: the tracer's variables
        // come back at exec. One that empties LD_PRELOAD on purpose leaves it untraced: not judged, so no pass.
        let cleared = try check(["/usr/bin/env", "-i", Products.fixture("gatec"), "leak"])
        #expect(cleared.status == 23, "\(cleared.stderr)")
        #expect(findings(cleared.json).map { $0.integer("bytes") } == [4_321], "\(findings(cleared.json))")
        let hidden = try check(["/usr/bin/env", "LD_PRELOAD=", Products.fixture("gatec"), "leak"])
        #expect(hidden.status == 66, "\(hidden.stderr)")
        #expect(hidden.stderr.contains("exec'd a program that wrote no trace"), "\(hidden.stderr)")
        let leaking = try check(["/bin/sh", "-c", "exec \"$0\" leak", Products.fixture("gatec")])
        #expect(leaking.status == 23, "\(leaking.stderr)")
        let definite = findings(leaking.json).filter { $0["kind"] as? String == "definite" }
        #expect(definite.count == 1 && definite.first?.integer("bytes") == 4_321, "\(findings(leaking.json))")
    }

    /// A process killed before its exit-time scan: its status fails the run, and its live blocks (a shell's, here)
    /// are not called direct leaks, since nothing looked for their pointers.
    @Test func aProcessKilledBeforeItsScanIsNotJudged() throws {
        let result = try check(["/bin/sh", "-c", "kill -ABRT $$"])
        #expect(result.status == 128 + 6, "\(result.stderr)")
        let process = try #require(result.json.objects("processes").first, "\(result.stderr)")
        #expect(process["ended_before_scan"] as? Bool == true && process["has_leak_scan"] as? Bool == false)
        #expect(findings(result.json).isEmpty, "\(findings(result.json))")
    }

    /// A followed process that outlives the command (a daemon) may have created its trace file without writing
    /// its header yet: not a damaged trace (status 66), nothing to judge yet.
    @Test func aTraceStillBeingCreatedIsNotUnreadable() throws {
        let scratch = try Scratch()
        let directory = scratch.path("traces")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let result = try runProgram(
            Products.cli,
            [
                "check", "--trace-dir", directory, "--", "/bin/sh", "-c",
                "head -c 4096 /dev/zero > \"$0\"/malloctrace.daemon.12345.mtrace", directory,
            ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("had only begun tracing when the command ended"), "\(result.stderr)")
    }

    @Test func theProgramsOwnOutputAndFailureWin() throws {
        let result = try runProgram(Products.cli, ["check", "--", Products.fixture("patterns"), "exit"])
        #expect(result.status == 3, "the program's _exit(3), not 23 and not 0")
    }

    @Test func tracesAreJudgedToo() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("gatec", ["leak"], in: scratch, options: ["--leak-kinds"])
        let result = try runProgram(Products.cli, ["check", "--format", "json", trace])
        #expect(result.status == 23)
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(findings(object).count == 1)
        let custom = try runProgram(Products.cli, ["check", "--error-exitcode", "7", trace])
        #expect(custom.status == 7)
        #expect(custom.stdout.contains("Direct leak of 4321 byte(s) in 1 object(s) allocated from:"))
        #expect(custom.stdout.contains("SUMMARY: malloctrace: 4321 byte(s) leaked in 1 allocation(s)."))
    }

    @Test func unreadableTracesAndUsageErrorsHaveTheirOwnStatus() throws {
        let scratch = try Scratch()
        let junk = scratch.path("junk.mtrace")
        #expect(FileManager.default.createFile(atPath: junk, contents: Data("not a trace".utf8)))
        #expect(try runProgram(Products.cli, ["check", junk]).status == 66)
        #expect(try runProgram(Products.cli, ["check", "--leak-kinds", "bogus", junk]).status == 64)
        #expect(try runProgram(Products.cli, ["check"]).status == 64)
        // Suppression files are text: asking for them in JSON is a usage error, not text where JSON was expected.
        let both = try runProgram(Products.cli, ["check", "--gen-suppressions", "--format", "json", junk])
        #expect(both.status == 64 && both.stderr.contains("--gen-suppressions"), "\(both.stderr)")
    }

    @Test func aSuppressionInEitherSyntaxRemovesExactlyItsFinding() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("gatecpp", ["leak"], in: scratch, options: ["--leak-kinds"])
        let lsan = scratch.path("lsan.supp")
        try "# known\nleak:leakOne\n".write(toFile: lsan, atomically: true, encoding: .utf8)
        let memcheck = scratch.path("memcheck.supp")
        try
            "{\n   known-leak\n   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:operator new[]*\n   fun:leakOne*\n}\n"
            .write(toFile: memcheck, atomically: true, encoding: .utf8)
        for file in [lsan, memcheck] {
            let result = try runProgram(Products.cli, ["check", "--format", "json", "--suppressions", file, trace])
            #expect(result.status == 0, "\(file): \(result.stdout.prefix(1500)) \(result.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
            let uses = object.objects("processes").flatMap { $0.objects("suppressions") }
            #expect(uses.contains { $0.integer("findings") == 1 && $0.integer("bytes") == 100 }, "\(uses)")
        }
    }

    @Test func generatedSuppressionsSuppressEverythingTheyNamed() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("gatec", ["leak"], in: scratch, options: ["--leak-kinds"])
        let generated = try runProgram(
            Products.cli, ["check", "--gen-suppressions", "--leak-kinds", "all", trace])
        #expect(generated.status == 23)
        let file = scratch.path("generated.supp")
        try generated.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        let again = try runProgram(Products.cli, ["check", "--leak-kinds", "all", "--suppressions", file, trace])
        #expect(again.status == 0, "\(again.stdout)")
    }

    @Test func limitsAndBaselinesGateAnyProgram() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("gatec", ["leak"], in: scratch, options: ["--leak-kinds"])
        let peak = try runProgram(Products.cli, ["check", "--max-peak", "1KiB", "--max-leaked", "1MiB", trace])
        #expect(peak.status == 23)
        #expect(peak.stdout.contains("is over --max-peak 1.0 KiB"), "\(peak.stdout)")
        // --max-leaked tolerates leaks up to the size: 4,321 B pass 5,000 B and fail 4,000 B.
        #expect(try runProgram(Products.cli, ["check", "--max-leaked", "5000", trace]).status == 0)
        #expect(try runProgram(Products.cli, ["check", "--max-leaked", "4000", trace]).status == 23)
        let baseline = scratch.path("baseline.json")
        let saved = try runProgram(Products.cli, ["check", "--max-leaked", "1MiB", "--save-baseline", baseline, trace])
        #expect(saved.status == 0, "\(saved.stderr)")
        let same = try runProgram(
            Products.cli, ["check", "--max-leaked", "1MiB", "--baseline", baseline, "--fail-on-increase", "5", trace])
        #expect(same.status == 0, "\(same.stdout)")
    }

    @Test func junitAndSARIFFilesAreWritten() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("gatecpp", ["leak"], in: scratch, options: ["--leak-kinds"])
        let junit = scratch.path("leaks.xml"), sarif = scratch.path("leaks.sarif")
        let result = try runProgram(Products.cli, ["check", "--junit", junit, "--sarif", sarif, trace])
        #expect(result.status == 23)
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<failure"))
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sarif)))
        let runs = (document as? [String: Any])?["runs"] as? [[String: Any]] ?? []
        #expect((runs.first?["results"] as? [Any])?.count == 1)
    }

    @Test func outputFilesThatAreDevicesAreWrittenInPlace() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("gatec", ["leak"], in: scratch, options: ["--leak-kinds"])
        var before = stat()
        try #require(stat("/dev/full", &before) == 0 && (before.st_mode & S_IFMT) == S_IFCHR, "/dev/full is no device")
        for option in ["--junit", "--sarif", "--save-baseline"] {
            let result = try runProgram(Products.cli, ["check", option, "/dev/full", trace])
            #expect(result.status == 1, "\(option): \(result.stderr)")
            #expect(result.stderr.contains("No space left on device"), "\(option): \(result.stderr)")
            var after = stat()
            // An atomic replace would have put a regular file where the device was.
            #expect(stat("/dev/full", &after) == 0 && (after.st_mode & S_IFMT) == S_IFCHR, "\(option)")
        }
    }

    @Test func pythonPassesAndALeakInCFails() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { return }
        let scratch = try Scratch()
        let script = scratch.path("work.py")
        try """
        import json, re, collections, threading
        d = collections.Counter(re.findall(r"\\w+", "the quick brown fox jumps over the lazy dog" * 50))
        t = threading.Thread(target=lambda: sum(range(10000))); t.start(); t.join()
        print(json.dumps(d.most_common(3)))
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let clean = try check(["/usr/bin/python3", script])
        #expect(clean.status == 0, "\(findings(clean.json))")
        #expect(clean.stdout.contains("[[\"the\", 51]"))
        let leaky = scratch.path("leaky.py")
        try "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.malloc.restype = ctypes.c_void_p\nlibc.malloc(4321)\n"
            .write(toFile: leaky, atomically: true, encoding: .utf8)
        let leak = try check(["/usr/bin/python3", leaky])
        #expect(leak.status == 23)
        #expect(findings(leak.json).contains { $0.integer("bytes") == 4_321 && $0["kind"] as? String == "definite" })
    }
}

/// `malloctrace check -- swift test` on a small package: the test runner is judged (not the compiler and
/// SwiftPM that `swift test` also starts), a clean package passes and a leaking test names its line.
@Suite(.serialized) struct CheckSwiftTestTests {
    private func makePackage(in scratch: Scratch, leaking: Bool) throws -> URL {
        let root = scratch.url.appendingPathComponent("Tiny")
        let files = [
            "Package.swift": """
            // swift-tools-version: 6.0
            import PackageDescription
            let package = Package(
                name: "Tiny", targets: [.target(name: "Tiny"), .testTarget(name: "TinyTests", dependencies: ["Tiny"])])
            """,
            "Sources/Tiny/Tiny.swift": """
            public func words(_ text: String) -> [String: Int] {
                var counts: [String: Int] = [:]
                for word in text.split(separator: " ") { counts[String(word), default: 0] += 1 }
                return counts
            }
            """,
            "Tests/TinyTests/TinyTests.swift": """
            import Testing
            @testable import Tiny
            final class Box { var values = [1, 2, 3] }
            @Test func counts() {
                #expect(words("a b a")["a"] == 2)
                \(leaking ? "_ = Unmanaged.passRetained(Box())  // the leak" : "")
            }
            """,
        ]
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        return root
    }

    @Test(arguments: [false, true])
    func swiftTestIsJudgedByItsTestRunner(leaking: Bool) throws {
        let scratch = try Scratch()
        let package = try makePackage(in: scratch, leaking: leaking)
        let build = try runProgram(
            "/usr/bin/env", ["swift", "build", "--build-tests"], directory: package, timeout: 600)
        try #require(build.status == 0, "\(build.stderr)")
        let result = try runProgram(
            Products.cli, ["check", "--", "swift", "test", "--skip-build"], directory: package, timeout: 300)
        #expect(result.stderr.contains("judged 2 of"), "\(result.stderr.suffix(2000))")
        let named = result
        if leaking {
            #expect(named.status == 23)
            #expect(named.stderr.contains("Direct leak of 24 byte(s) in 1 object(s) allocated from:"))
            #expect(
                named.stderr.contains("#0 TinyTests.counts() -> () \(package.path)/Tests/TinyTests/TinyTests.swift:6"))
        } else {
            #expect(named.status == 0, "\(named.stderr.suffix(3000))")
        }
    }
}
