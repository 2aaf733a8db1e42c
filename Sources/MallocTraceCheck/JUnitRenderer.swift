import MallocTraceReports

/// `--junit FILE`: one `<testsuite name="malloctrace check">` with one `<testcase>` per process and one
/// `<failure>` per finding and per limit violation (message: the one-line head; type: the rule id; body:
/// the stack). Counts follow junitparser's reading: `failures` counts `<failure>` elements. Durations are
/// not measured: `time` is 0.
public enum JUnitRenderer {
    public static func render(_ verdict: CheckVerdict) -> String {
        let failures = verdict.processes.reduce(0) { $0 + $1.findings.count + $1.violations.count }
        let counts = "tests=\"\(verdict.processes.count)\" failures=\"\(failures)\" errors=\"0\""
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuites name=\"malloctrace\" \(counts) time=\"0\">\n"
        xml += "  <testsuite name=\"malloctrace check\" \(counts) skipped=\"0\" time=\"0\">\n"
        for process in verdict.processes {
            let name = CheckText.processLabel(process, arguments: false)
            let classname = "malloctrace." + CheckText.executableName(process)
            xml += "    <testcase name=\"\(escape(name))\" classname=\"\(escape(classname))\" time=\"0\">\n"
            for finding in process.findings {
                let body = "allocated from:\n" + CheckText.stack(finding.frames)
                xml += failure(message: CheckText.head(finding), type: CheckText.ruleID(finding.kind), body: body)
            }
            for violation in process.violations {
                let body = ([violation.message] + CheckText.grownSites(violation.grownSites, indent: "    "))
                    .joined(separator: "\n")
                xml += failure(message: violation.message, type: CheckText.ruleID(violation.limit), body: body)
            }
            xml += "      <system-out>\(escape(systemOut(process)))</system-out>\n"
            xml += "    </testcase>\n"
        }
        xml += "  </testsuite>\n</testsuites>\n"
        return xml
    }

    static func failure(message: String, type: String, body: String) -> String {
        "      <failure message=\"\(escape(message))\" type=\"\(escape(type))\">\(escape(body))</failure>\n"
    }

    /// The command line, how the process ended, notes and suppressions: context for a reader of the case.
    static func systemOut(_ process: ProcessVerdict) -> String {
        var lines = ["command: " + CheckText.processLabel(process), "end: " + process.endDescription]
        lines.append("trace: " + process.tracePath)
        if process.countsLiveBlocksWithoutScan { lines.append("note: the trace has no leak scan") }
        lines += process.notes.map { "note: " + $0 }
        lines += process.suppressions.map {
            "suppressed by \($0.name) (\($0.origin)): \($0.findings) finding(s), \($0.bytes) byte(s)"
        }
        return lines.joined(separator: "\n")
    }

    /// Escapes for both text and attributes: markup characters, line breaks and tabs as character
    /// references (attribute values would lose them otherwise), and characters XML 1.0 forbids (other
    /// C0 controls, U+FFFE, U+FFFF) as U+FFFD.
    public static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&apos;"
            case "\n": result += "&#10;"
            case "\r": result += "&#13;"
            case "\t": result += "&#9;"
            case _ where scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF:
                result.unicodeScalars.append("\u{FFFD}")
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
