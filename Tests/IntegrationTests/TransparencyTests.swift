import Foundation
import Testing

/// The traced program must behave exactly as it does untraced, and tracing must fail loudly, never silently.
@Suite(.serialized) struct TransparencyTests {
    private func expectSameBehaviour(_ program: String, _ arguments: [String], environment: [String: String] = [:])
        throws
    {
        let scratch = try Scratch()
        let untraced = try runProgram(program, arguments, environment: environment)
        let traced = try runProgram(
            Products.cli, ["run", "-o", scratch.path("t.mtrace"), "--", program] + arguments, environment: environment)
        #expect(traced.stdout == untraced.stdout)
        #expect(traced.status == untraced.status)
        #expect(traced.stderr.hasSuffix(untraced.stderr) || traced.stderr.contains(untraced.stderr))
        #expect(FileManager.default.fileExists(atPath: scratch.path("t.mtrace")))
    }

    @Test func lsIsUnchanged() throws {
        try expectSameBehaviour("/bin/ls", ["-l", "--time-style=+", "/usr/lib"])
    }

    @Test func cPlusPlusIsUnchanged() throws {
        try expectSameBehaviour(Products.fixture("stl"), [])
    }

    @Test func pythonIsUnchanged() throws {
        let candidates = ["/usr/bin/python3", "/usr/local/bin/python3"]
        let python = try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) })
        let script =
            "import json, collections\nd = collections.Counter(str(i % 97) for i in range(20000))\n"
            + "print(json.dumps(sorted(d.items())[:5]), sum(len(k) for k in d))"
        try expectSameBehaviour(python, ["-c", script], environment: ["PYTHONMALLOC": "malloc"])
    }

    @Test(arguments: [("exit 0", 0), ("exit 7", 7), ("kill -TERM $$", 143)])
    func exitStatusPassesThrough(command: String, status: Int32) throws {
        let scratch = try Scratch()
        let result = try runProgram(
            Products.cli, ["run", "-o", scratch.path("sh.%p.mtrace"), "--", "sh", "-c", command])
        #expect(result.status == status)
    }

    @Test func staticExecutableIsRefused() throws {
        let scratch = try Scratch()
        let result = try runProgram(
            Products.cli, ["run", "-o", scratch.path("s.mtrace"), "--", Products.fixture("static")])
        #expect(result.status != 0)
        #expect(result.stderr.contains("is statically linked"))
        #expect(result.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: scratch.path("s.mtrace")))
    }

    @Test func existingOutputIsNeverOverwritten() throws {
        let scratch = try Scratch()
        let existing = scratch.path("keep.mtrace")
        try Data("precious".utf8).write(to: URL(fileURLWithPath: existing))
        let viaCLI = try runProgram(Products.cli, ["run", "-o", existing, "--", "/bin/true"])
        #expect(viaCLI.status != 0)
        #expect(viaCLI.stderr.contains("already exists"))
        // Directly through LD_PRELOAD: the target still runs normally, the trace goes to a fresh name and one
        // line says which.
        let direct = try runProgram(
            Products.fixture("stl"), [],
            environment: ["LD_PRELOAD": Products.preloadLibrary, "MALLOCTRACE_OUTPUT": existing])
        #expect(direct.status == 0)
        #expect(direct.stdout.hasPrefix("checksum "))
        #expect(
            direct.stderr
                == "malloctrace: \(existing) exists; the trace goes to \(scratch.path("keep-2.mtrace")) instead\n")
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "precious")
    }

    @Test func preloadWithoutTheCLIWritesAPrivateFile() throws {
        let scratch = try Scratch()
        let result = try runProgram(
            Products.fixture("patterns"), ["leaks"],
            environment: [
                "LD_PRELOAD": Products.preloadLibrary, "MALLOCTRACE_OUTPUT": scratch.path("direct.%p.mtrace"),
            ])
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
        let files = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path)
        let name = try #require(files.first { $0.hasPrefix("direct.") })
        let attributes = try FileManager.default.attributesOfItem(atPath: scratch.path(name))
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try jsonReport(scratch.path(name)).object("summary").integer("leaked_bytes") == 1030)
    }

    @Test func preloadPathPointsAtTheLibrary() throws {
        let result = try runProgram(Products.cli, ["preload-path"])
        #expect(result.status == 0)
        let path = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(path.hasSuffix("/libmalloctrace.so"))
        #expect(FileManager.default.fileExists(atPath: path))
    }

    /// The library must never drag the Swift runtime (or libstdc++) into a traced program.
    @Test func preloadLibraryNeedsOnlyLibcAndLibunwind() throws {
        let result = try runProgram("/usr/bin/readelf", ["-d", Products.preloadLibrary])
        #expect(result.status == 0)
        let needed = result.stdout.split(separator: "\n").filter { $0.contains("(NEEDED)") }
            .compactMap { $0.split(separator: "[").last?.split(separator: "]").first.map(String.init) }
        #expect(needed.sorted() == ["libc.so.6", "libunwind.so.8"])
    }

    @Test func environmentIsRestoredForChildren() throws {
        let scratch = try Scratch()
        let result = try runProgram(
            Products.cli,
            [
                "run", "-o", scratch.path("env.mtrace"), "--", "sh", "-c",
                "env | grep -c -e LD_PRELOAD -e MALLOCTRACE_ || true",
            ],
            removing: ["LD_PRELOAD"])
        #expect(result.stdout == "0\n")
    }
}
