import Foundation
import Testing

/// Whole reports of deterministic fixtures compared with committed golden files, so that any change of a
/// report's text or JSON shows up as a diff. What differs between runs and machines is normalized first
/// (see `normalizeText` and `normalizeJSON`); Golden/README.md says how to regenerate the files.
@Suite struct GoldenReportTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    static let updating = ProcessInfo.processInfo.environment["MALLOCTRACE_UPDATE_GOLDEN"] == "1"

    static let cases: [(name: String, fixture: String, arguments: [String], options: [String])] = [
        ("patterns-leaks", "patterns", ["leaks"], []),
        ("leakkinds-chain", "leakkinds", ["chain"], ["--leak-kinds"]),
    ]

    @Test(arguments: cases.map(\.name))
    func reportsMatchTheirGoldenFiles(name: String) throws {
        let entry = try #require(Self.cases.first { $0.name == name })
        let scratch = try Scratch()
        let (run, trace) = try traceFixture(entry.fixture, entry.arguments, in: scratch, options: entry.options)
        #expect(run.status == 0, "\(run.stderr)")
        let sections = ["--sections", "summary,leaks,histogram", "--top", "3"]
        let text = try runProgram(Products.cli, ["report", trace] + sections)
        let json = try runProgram(Products.cli, ["report", trace, "--format", "json"] + sections)
        try compare(normalizeText(text.stdout), golden: "\(name).txt")
        try compare(try normalizeJSON(json.stdout), golden: "\(name).json")
    }

    private func compare(_ actual: String, golden name: String) throws {
        let url = Self.directory.appendingPathComponent(name)
        if Self.updating {
            try actual.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(actual == expected, "\(name) differs; regenerate with MALLOCTRACE_UPDATE_GOLDEN=1 if intended")
    }

    /// Paths, pids, times, rates, addresses and libc's own frames (whose file:line depend on the machine's
    /// debug packages) are replaced by placeholders; the symbolization notes are dropped.
    func normalizeText(_ text: String) -> String {
        var lines: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Frames:") { break }
            if line.contains("calls per second") || line.contains("peak RSS") { continue }
            var line = String(line)
            let replacements: [(String, String)] = [
                (#"report of .*"#, "report of TRACE"),
                (#"command    \S*/"#, "command    "),
                (#"pid [0-9]+"#, "pid PID"),
                (#"[0-9]+\.[0-9]+ s\b"#, "T s"),
                (#"\+0x[0-9a-f]+"#, "+0xOFFSET"),
                (#"\([^()]*, (libc\.so\.6|ld-linux-x86-64\.so\.2)\)"#, "($1)"),
            ]
            for (pattern, template) in replacements {
                line = line.replacingOccurrences(of: pattern, with: template, options: .regularExpression)
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n").trimmingCharacters(in: .newlines) + "\n"
    }

    /// The same for JSON: run-dependent values become placeholders, module and source paths their file names,
    /// and libc's frames lose file and line; keys are sorted.
    func normalizeJSON(_ text: String) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        let normalized = normalize(object, key: nil)
        let data = try JSONSerialization.data(withJSONObject: normalized, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private func normalize(_ value: Any, key: String?) -> Any {
        let placeholders: Set<String> = [
            "path", "trace", "pid", "ppid", "parent_pid", "duration_ns", "calls_per_second", "peak_time_ns",
            "time_ns", "start_time", "address", "offset", "executable", "arguments", "build_id", "symbolizer",
            "symbolization", "peak_rss_bytes", "rss_samples",
        ]
        if let key, placeholders.contains(key) { return "<\(key)>" }
        if let dictionary = value as? [String: Any] {
            var result: [String: Any] = [:]
            let module = (dictionary["module"] as? String).map { URL(fileURLWithPath: $0).lastPathComponent }
            for (key, child) in dictionary { result[key] = normalize(child, key: key) }
            if let module { result["module"] = module }
            // Source paths name the checkout's directory: the file name is what the report is about.
            if let file = dictionary["file"] as? String {
                result["file"] = URL(fileURLWithPath: file).lastPathComponent
            }
            if module == "libc.so.6" || module == "ld-linux-x86-64.so.2" {
                result["file"] = "<libc>"
                result["line"] = "<libc>"
            }
            return result
        }
        if let array = value as? [Any] { return array.map { normalize($0, key: nil) } }
        return value
    }
}
