import MallocTraceFormat
import MallocTraceReports

/// The default output of `check`: LeakSanitizer's report shape, one section per process.
public enum LeakSanitizerTextRenderer {
    static let rule = String(repeating: "-", count: 53)

    /// The whole report; with several processes, a total line ends it.
    public static func render(_ verdict: CheckVerdict) -> String {
        var sections = verdict.processes.map(render)
        if verdict.processes.count > 1 {
            let bytes = verdict.processes.reduce(0) { $0 &+ $1.leakedBytes }
            let blocks = verdict.processes.reduce(0) { $0 &+ $1.leakedBlocks }
            let failed = verdict.processes.filter(\.failed).count
            sections.append(
                "SUMMARY: malloctrace: \(bytes) byte(s) leaked in \(blocks) allocation(s) in "
                    + "\(verdict.processes.count) processes (\(failed) failed).\n")
        }
        return sections.joined(separator: "\n")
    }

    /// One process's section, ending in a newline.
    public static func render(_ process: ProcessVerdict) -> String {
        let tag = "==\(process.processID.map(String.init) ?? "?")=="
        var notes = process.notes
        if process.countsLiveBlocksWithoutScan {
            notes.append("the trace has no leak scan: every block live at exit counts as a direct leak")
        }
        let noteLines = notes.map { "\(tag) note: \($0)\n" }.joined()
        guard process.failed else {
            var line = "\(tag) malloctrace: OK: \(CheckText.processLabel(process)): no leaks"
            let suppressed = process.suppressions.reduce(0) { $0 + $1.findings }
            if suppressed > 0 {
                let bytes = process.suppressions.reduce(0) { $0 &+ $1.bytes }
                line += ", \(suppressed) suppressed (\(bytes) byte(s))"
            }
            if let uncounted = uncountedText(process) { line += "; not counted: \(uncounted)" }
            return line + "\n" + noteLines
        }
        let problem = process.findings.isEmpty ? "limits exceeded" : "detected memory leaks"
        var text = "\(tag) ERROR: malloctrace: \(problem) in \(CheckText.processLabel(process))\n" + noteLines
        for finding in process.findings {
            text += "\n\(CheckText.head(finding)) allocated from:\n"
            text += finding.frames.isEmpty ? "    (no frames)\n" : CheckText.stack(finding.frames) + "\n"
        }
        for violation in process.violations {
            text += "\nLimit exceeded: \(violation.message)\n"
            text += CheckText.grownSites(violation.grownSites, indent: "    ").map { $0 + "\n" }.joined()
        }
        if !process.suppressions.isEmpty {
            text += "\n\(rule)\nSuppressions used:\n  count      bytes template\n"
            for use in process.suppressions {
                text += pad(use.blocks, 7) + " " + pad(use.bytes, 10) + " \(use.name) (\(use.origin))\n"
            }
            text += rule + "\n"
        }
        if let uncounted = uncountedText(process) { text += "\nNot counted: \(uncounted).\n" }
        text +=
            "\nSUMMARY: malloctrace: \(process.leakedBytes) byte(s) leaked in \(process.leakedBlocks) allocation(s).\n"
        return text
    }

    /// `72704 byte(s) in 1 reachable object(s), 16 byte(s) in 1 possible object(s)`, or nil when none.
    static func uncountedText(_ process: ProcessVerdict) -> String? {
        let parts = LeakKind.allCases.reversed().compactMap { kind -> String? in
            guard let bytes = process.uncountedBytes[kind] else { return nil }
            return "\(bytes) byte(s) in \(process.uncountedBlocks[kind] ?? 0) \(kind) object(s)"
        }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }

    static func pad(_ value: UInt64, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: " ", count: max(0, width - digits.count)) + digits
    }
}
