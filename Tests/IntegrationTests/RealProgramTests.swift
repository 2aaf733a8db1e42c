import Foundation
import Testing

/// Real programs behave the same under `malloctrace run`: byte-identical stdout and output files, same exit
/// status, and a trace with their allocations. Small workloads; tools/smoke.sh runs bigger ones.
@Suite(.serialized) struct RealProgramTests {
    private static func installed(_ path: String) -> Bool { FileManager.default.isExecutableFile(atPath: path) }

    /// Runs `command` untraced in one fresh directory of `scratch` and traced in another (both set up by
    /// `prepare`), and returns the traces written, after checking stdout, status and the `outputs` files.
    private func expectSameBehaviour(
        _ command: [String], in scratch: Scratch, stdin: String = "", outputs: [String] = [],
        environment: [String: String] = [:],
        prepare: (URL) throws -> Void = { _ in }
    ) throws -> [String] {
        let untracedDirectory = scratch.url.appendingPathComponent("untraced")
        let tracedDirectory = scratch.url.appendingPathComponent("traced")
        for directory in [untracedDirectory, tracedDirectory] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
            try prepare(directory)
        }
        let input = scratch.path("stdin")
        try Data(stdin.utf8).write(to: URL(fileURLWithPath: input))
        // sh gives the command its stdin from the file; neither sh nor the redirection is traced.
        let untraced = try runProgram(
            "/bin/sh", ["-c", "exec \"$@\" <\"$0\"", input] + command, environment: environment,
            directory: untracedDirectory)
        let traced = try runProgram(
            "/bin/sh",
            ["-c", "exec \"$@\" <\"$0\"", input, Products.cli, "run", "-o", scratch.path("trace.%p.mtrace"), "--"]
                + command, environment: environment, directory: tracedDirectory)
        #expect(untraced.status == 0, "\(untraced.stderr)")
        #expect(traced.status == untraced.status)
        #expect(traced.stdout == untraced.stdout)
        for output in outputs {
            let expected = try Data(contentsOf: untracedDirectory.appendingPathComponent(output))
            let actual = try Data(contentsOf: tracedDirectory.appendingPathComponent(output))
            #expect(actual == expected, "\(output) differs")
        }
        let traces = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path)
            .filter { $0.hasSuffix(".mtrace") }.sorted().map(scratch.path)
        #expect(!traces.isEmpty)
        return traces
    }

    @Test(.enabled(if: installed("/usr/bin/sqlite3"))) func sqlite3IsUnchanged() throws {
        let script = """
            CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
            INSERT INTO t SELECT i, 'name-' || (i * 7919 % 100), i * 0.5 FROM n;
            CREATE INDEX t_name ON t(name);
            SELECT name, count(*), sum(value) FROM t GROUP BY name ORDER BY name LIMIT 5;
            SELECT count(*) FROM t a JOIN t b ON a.id = b.id + 1 WHERE a.name < b.name;

            """
        let scratch = try Scratch()
        let traces = try expectSameBehaviour(["/usr/bin/sqlite3", "-batch", ":memory:"], in: scratch, stdin: script)
        let summary = try jsonReport(try #require(traces.first)).object("summary")
        #expect((summary.integer("allocation_calls") ?? 0) > 1000)
    }

    @Test(.enabled(if: installed("/usr/bin/git"))) func gitLogIsUnchanged() throws {
        let identity = [
            "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid", "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
        ]
        let script = """
            git init -q -b main repo && cd repo && for i in 1 2 3 4 5; do
              seq 1 $i > file$i.txt && git add -A && git commit -q -m "commit $i" || exit 1
            done
            """
        let scratch = try Scratch()
        let traces = try expectSameBehaviour(
            ["/usr/bin/git", "-C", "repo", "--no-pager", "log", "--stat", "--format=%H %s"], in: scratch,
            environment: identity
        ) { directory in
            let result = try runProgram("/bin/sh", ["-c", script], environment: identity, directory: directory)
            #expect(result.status == 0, "\(result.stderr)")
        }
        let summary = try jsonReport(try #require(traces.first)).object("summary")
        #expect((summary.integer("allocation_calls") ?? 0) > 100)
    }

    /// gcc runs cc1 and as as child processes: with MALLOCTRACE_FOLLOW_CHILDREN=1 and a %p pattern each gets a
    /// trace of its own, and the object file is byte-identical.
    @Test(.enabled(if: installed("/usr/bin/gcc"))) func gccWithFollowedChildrenIsUnchanged() throws {
        let source = "#include <stdlib.h>\nint main(void) { void *p = malloc(10); free(p); return 0; }\n"
        let scratch = try Scratch()
        let traces = try expectSameBehaviour(
            ["/usr/bin/gcc", "-O2", "-c", "small.c", "-o", "small.o"], in: scratch, outputs: ["small.o"],
            environment: ["MALLOCTRACE_FOLLOW_CHILDREN": "1"]
        ) { directory in
            try Data(source.utf8).write(to: directory.appendingPathComponent("small.c"))
        }
        let executables = try traces.map { try jsonReport($0, top: 0).object("trace")["executable"] as? String ?? "" }
        #expect(executables.contains { $0.hasSuffix("/cc1") }, "\(executables)")
        #expect(executables.contains { $0.hasSuffix("/gcc") || $0.contains("/x86_64-linux-gnu-gcc") })
    }
}
