import Foundation
import MallocTraceReports

/// `--github`: workflow commands that annotate the run (`::error file=F,line=L,title=T::message`) and a
/// Markdown table for the job summary (`$GITHUB_STEP_SUMMARY`).
public enum GitHubRenderer {
    /// Annotations per process before the rest is counted in one warning.
    public static let defaultAnnotationLimit = 10

    /// One `::error` per finding (pointing at its first shown frame with a source file, relative to
    /// `sourceRoot`, normally `$GITHUB_WORKSPACE`) and per limit violation, at most `limit` per process.
    public static func annotations(
        _ verdict: CheckVerdict, limit: Int = defaultAnnotationLimit, sourceRoot: String? = nil
    ) -> String {
        var lines: [String] = []
        for process in verdict.processes {
            let label = CheckText.processLabel(process)
            var commands: [String] = []
            for finding in process.findings {
                var properties: [(String, String)] = []
                if let frame = CheckText.sourceFrame(finding), let file = frame.file {
                    properties.append(("file", CheckText.relativePath(file, to: sourceRoot)))
                    if let line = frame.line { properties.append(("line", String(line))) }
                }
                properties.append(("title", "malloctrace: " + CheckText.head(finding)))
                let message =
                    "\(CheckText.head(finding)) in \(label), allocated from:\n" + CheckText.stack(finding.frames)
                commands.append(command("error", properties, message))
            }
            for violation in process.violations {
                let title = "malloctrace: limit \(violation.limit.rawValue) exceeded"
                let message =
                    ([violation.message + " in " + label]
                    + CheckText.grownSites(violation.grownSites, indent: "    ")).joined(separator: "\n")
                commands.append(command("error", [("title", title)], message))
            }
            lines += commands.prefix(max(0, limit))
            if commands.count > limit {
                lines.append(
                    command(
                        "warning", [("title", "malloctrace")],
                        "\(commands.count - limit) more findings not shown for \(label)"))
            }
        }
        return lines.map { $0 + "\n" }.joined()
    }

    /// `::KIND key=value,…::message` with GitHub's escaping.
    static func command(_ kind: String, _ properties: [(String, String)], _ message: String) -> String {
        let list = properties.map { "\($0.0)=\(escapeProperty($0.1))" }.joined(separator: ",")
        return "::\(kind)\(list.isEmpty ? "" : " " + list)::\(escapeData(message))"
    }

    /// Message escaping of the Actions toolkit: `%`, CR, LF.
    public static func escapeData(_ text: String) -> String {
        text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D")
            .replacingOccurrences(of: "\n", with: "%0A")
    }

    /// Property escaping: the message escapes plus `:` and `,`.
    public static func escapeProperty(_ text: String) -> String {
        escapeData(text).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }

    /// A Markdown section: one table row per process (status, leaked, peak, findings).
    public static func stepSummary(_ verdict: CheckVerdict) -> String {
        var text = "### malloctrace check: \(verdict.failed ? "failed" : "passed")\n\n"
        text += "| process | status | leaked | peak | findings |\n|---|---|---|---|---|\n"
        for process in verdict.processes {
            let status = process.failed ? "❌ failed" : "✅ ok"
            let leaked =
                "\(Formatting.bytes(process.leakedBytes)) in \(Formatting.counted(process.leakedBlocks, "block"))"
            var findings = [Formatting.counted(UInt64(process.findings.count), "leak")]
            if !process.violations.isEmpty {
                findings.append(Formatting.counted(UInt64(process.violations.count), "limit") + " exceeded")
            }
            if process.countsLiveBlocksWithoutScan { findings.append("no leak scan") }
            let cells = [
                "`" + CheckText.processLabel(process).replacingOccurrences(of: "`", with: "'") + "`", status, leaked,
                Formatting.bytes(process.peakBytes), findings.joined(separator: ", "),
            ]
            text += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
        }
        return text
    }

    /// Appends `markdown` to the file `$GITHUB_STEP_SUMMARY` names (in `environment`, else this process's
    /// environment); does nothing when it is unset.
    public static func appendStepSummary(_ markdown: String, environment: [String: String]? = nil) throws(CheckError) {
        let environment = environment ?? ProcessInfo.processInfo.environment
        guard let path = environment["GITHUB_STEP_SUMMARY"], !path.isEmpty else { return }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw .unwritableFile(path: path, reason: "cannot open for appending")
        }
        defer { try? handle.close() }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(markdown.utf8))
        } catch {
            throw .unwritableFile(path: path, reason: SuppressionParser.reasonText(error))
        }
    }
}
