import Foundation
import Testing

/// exec ends a trace cleanly, a failed exec does not end it, and --follow-children gives every process
/// its own trace.
@Suite(.serialized) struct FollowChildrenTests {
    private func traces(in scratch: Scratch) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).filter { $0.hasSuffix(".mtrace") }
            .sorted().map(scratch.path)
    }

    @Test func execEndsTheTraceWithItsOwnReason() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("processes", ["exec"], in: scratch)
        #expect(run.status == 0)
        let report = try jsonReport(trace)
        #expect(report.object("trace")["end_reason"] as? String == "exec")
        #expect(report.object("summary")["truncated"] as? Bool == false)
        #expect(report.objects("leaks").first.map(topFunction) == "before_exec")
        #expect(report.objects("leaks").first?.integer("bytes") == 192)
    }

    /// A wrapper script: its shell is what LD_PRELOAD reaches. Without --follow-children, `run` says that
    /// the programs it runs go untraced; with it, the program the script runs has its own trace.
    @Test(arguments: [false, true])
    func aScriptTargetIsExplained(follow: Bool) throws {
        let scratch = try Scratch()
        let script = scratch.path("wrapper.sh")
        try "#!/bin/sh\n\"$1\" leaks\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let options = follow ? ["--follow-children"] : []
        let run = try runProgram(
            Products.cli,
            ["run", "-o", scratch.path("w.%p.mtrace")] + options + ["--", script, Products.fixture("patterns")])
        #expect(run.status == 0, "\(run.stderr)")
        let note =
            "malloctrace: \(script) is a script: only its interpreter is traced, not the programs it runs"
            + " (add --follow-children for those)"
        #expect(run.stderr.split(separator: "\n").filter { $0 == note }.count == (follow ? 0 : 1), "\(run.stderr)")
        var leaked: [String: Int] = [:]
        for trace in try traces(in: scratch) {
            for site in try jsonReport(trace).objects("leaks") {
                leaked[topFunction(site) ?? "?", default: 0] += site.integer("bytes") ?? 0
            }
        }
        #expect(leaked["leak_hundreds"] == (follow ? 700 : nil))
    }

    @Test func failedExecKeepsTracing() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("processes", ["exec-fails"], in: scratch)
        #expect(run.status == 0)
        let report = try jsonReport(trace)
        #expect(report.object("trace")["end_reason"] as? String == "exit")
        #expect(report.object("summary").integer("allocation_calls") == 103)
        #expect(report.object("summary").integer("free_calls") == 100)
    }

    @Test func spawnedChildrenAreTracedOnlyWhenFollowed() throws {
        for follow in [false, true] {
            let scratch = try Scratch()
            var arguments = ["run", "-o", scratch.path("t.%p.mtrace")]
            if follow { arguments.append("--follow-children") }
            arguments += ["--", Products.fixture("processes"), "spawn", Products.fixture("patterns")]
            let run = try runProgram(Products.cli, arguments)
            #expect(run.status == 0, "\(run.stderr)")
            let files = try traces(in: scratch)
            #expect(files.count == (follow ? 3 : 1))
            guard follow else { continue }
            #expect(run.stderr.contains("malloctrace: child traces: "))
            // The two children are fixture-patterns runs: "leaks" (1,030 B leaked) and "peak" (25,000 B peak).
            var childFigures: [[Int?]] = []
            for file in files {
                let report = try jsonReport(file)
                guard (report.object("trace")["executable"] as? String)?.hasSuffix("fixture-patterns") == true
                else { continue }
                let summary = report.object("summary")
                #expect(summary["truncated"] as? Bool == false)
                childFigures.append([summary.integer("leaked_bytes"), summary.integer("peak_bytes")])
            }
            #expect(childFigures.sorted { ($0[0] ?? 0) < ($1[0] ?? 0) } == [[0, 25000], [1030, 1030]])
        }
    }

    @Test func followedShellCommandsGetATraceEach() throws {
        let scratch = try Scratch()
        let patterns = Products.fixture("patterns")
        let run = try runProgram(
            Products.cli,
            [
                "run", "--follow-children", "-o", scratch.path("sh.%p.mtrace"), "--", "sh", "-c",
                "\(patterns) leaks; \(patterns) peak",
            ])
        #expect(run.status == 0)
        var leakedByFixture: [Int] = []
        for file in try traces(in: scratch) {
            let report = try jsonReport(file)
            #expect(report.object("summary")["truncated"] as? Bool == false, "\(file)")
            if (report.object("trace")["executable"] as? String)?.hasSuffix("fixture-patterns") == true {
                leakedByFixture.append(report.object("summary").integer("leaked_bytes") ?? -1)
            }
        }
        #expect(leakedByFixture.sorted() == [0, 1030])
    }

    @Test func followingNeedsAPidInTheOutputPattern() throws {
        let result = try runProgram(
            Products.cli, ["run", "--follow-children", "-o", "/tmp/fixed.mtrace", "--", "/bin/true"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("needs %p"))
    }
}
