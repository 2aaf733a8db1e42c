public import MallocTraceFormat
public import MallocTraceReports

/// The phrases every renderer of a verdict shares, so that text, JUnit, GitHub and SARIF say the same.
public enum CheckText {
    /// `Direct leak of 48 byte(s) in 1 object(s)`, as LeakSanitizer words it (`Reachable block(s) of …` for
    /// reachable blocks, which LSan never reports).
    public static func head(_ finding: LeakFinding) -> String {
        let what =
            switch finding.kind {
            case .definite: "Direct leak"
            case .indirect: "Indirect leak"
            case .possible: "Possible leak"
            case .reachable: "Reachable block(s)"
            }
        return "\(what) of \(finding.bytes) byte(s) in \(finding.blocks) object(s)"
    }

    /// `#0 make_node /src/leak.c:12 (app+0x1139)`; without debug information `#0 make_node (app+0x1139)`;
    /// without a name `#0 app+0x1139`. Inlined calls end in ` [inlined]`.
    public static func frameLine(_ frame: ReportFrame, index: Int) -> String {
        var text = "#\(index) "
        if let function = frame.function {
            text += function
            if let file = frame.file { text += " " + file + (frame.line.map { ":\($0)" } ?? "") }
            text += " (\(frame.location))" + (frame.isInlined ? " [inlined]" : "")
        } else {
            text += frame.location
        }
        return text.escapingControlCharacters
    }

    /// The shown frames, one ``frameLine(_:index:)`` per line, each after `indent`.
    public static func stack(_ frames: [ReportFrame], indent: String = "    ") -> String {
        frames.enumerated().map { indent + frameLine($1, index: $0) }.joined(separator: "\n")
    }

    /// `/usr/bin/app --fast (pid 100)`; the trace path when the executable is unknown.
    public static func processLabel(_ process: ProcessVerdict, arguments: Bool = true) -> String {
        // The arguments start with argv[0]: the executable's path only when they are not shown.
        var words = [process.executable ?? process.tracePath]
        if arguments && !process.arguments.isEmpty { words = process.arguments }
        return words.joined(separator: " ").escapingControlCharacters + (process.processID.map { " (pid \($0))" } ?? "")
    }

    /// The executable's file name (`app`), or `unknown`.
    public static func executableName(_ process: ProcessVerdict) -> String {
        guard let executable = process.executable else { return "unknown" }
        return executable.split(separator: "/").last.map(String.init) ?? executable
    }

    /// The SARIF and JSON rule id of a finding: `leak/definite`.
    public static func ruleID(_ kind: LeakKind) -> String { "leak/\(kind)" }

    /// The rule id of a violation: `limit/max-peak`.
    public static func ruleID(_ limit: LimitViolation.Limit) -> String { "limit/\(limit.rawValue)" }

    /// `2 grown stacks:` lines under a baseline violation: `+190 (400 → 590)` and the stack.
    public static func grownSites(_ sites: [GrownSite], indent: String) -> [String] {
        sites.flatMap { site in
            ["\(indent)stack grew by \(site.after - site.before) (\(site.before) → \(site.after)):"]
                + site.frames.enumerated().map { indent + "    " + frameLine($1, index: $0) }
        }
    }

    /// The first shown frame that has a source file: where annotations point.
    public static func sourceFrame(_ finding: LeakFinding) -> ReportFrame? {
        finding.frames.first { $0.file != nil }
    }

    /// `path` relative to `root` when it lies inside it.
    public static func relativePath(_ path: String, to root: String?) -> String {
        guard var root, !root.isEmpty else { return path }
        if !root.hasSuffix("/") { root += "/" }
        return path.hasPrefix(root) ? String(path.dropFirst(root.count)) : path
    }
}
