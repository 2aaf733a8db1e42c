import MallocTraceReports

/// `--gen-suppressions`: ready-to-paste suppressions for findings, in valgrind memcheck's syntax (one block
/// per finding) and LeakSanitizer's (one `leak:` line per distinct first program function).
///
/// Neither syntax can escape its wildcards: a name holding `*` or `?` (C++ `operator*`, Swift optionals)
/// still matches itself, but may also match other names that differ right there. The memcheck blocks list
/// whole stacks (up to `maxFrames`), which keeps such over-matching narrow; the `leak:` line names one
/// function and matches any stack that passes through it (LSan's model).
public enum SuppressionGenerator {
    /// As valgrind's `--num-callers` default.
    public static let defaultFrameCount = 24

    /// Both sections for `findings`, memcheck blocks first; `SuppressionParser` reads the text whole.
    public static func generate(for findings: [LeakFinding], maxFrames: Int = defaultFrameCount) -> String {
        var text = "# malloctrace --gen-suppressions: memcheck blocks (valgrind syntax), then LeakSanitizer lines.\n"
        text += "# `malloctrace check --suppressions FILE` reads either; keep only what you mean to suppress.\n"
        for finding in findings {
            text += "\n" + memcheckBlock(for: finding, maxFrames: maxFrames)
        }
        var seen: Set<String> = []
        var lines: [String] = []
        for finding in findings {
            guard let line = leakSanitizerLine(for: finding), seen.insert(line).inserted else { continue }
            lines.append(line)
        }
        if !lines.isEmpty {
            text += "\n# LeakSanitizer syntax (also in an LSAN_OPTIONS=suppressions=FILE file):\n"
            text += lines.joined(separator: "\n") + "\n"
        }
        return text
    }

    /// One `Memcheck:Leak` block: the finding's kind and its valgrind-style stack (``MemcheckStack``), a
    /// `fun:` line per frame with a function, else `obj:` with the module path (`obj:*` when unknown).
    public static func memcheckBlock(for finding: LeakFinding, maxFrames: Int = defaultFrameCount) -> String {
        let lines = MemcheckStack.frames(of: finding).prefix(max(1, maxFrames)).map { frame in
            if let function = frame.function { return "   fun:" + function }
            return "   obj:" + (frame.object ?? "*")
        }
        let head = "\(finding.kind) leak of \(finding.bytes) bytes in \(finding.blocks) blocks"
        return """
            # \(head) from \(firstProgramFunction(of: finding) ?? "an unknown function")
            {
               malloctrace-\(finding.kind)-\(firstProgramFunction(of: finding) ?? "stack-\(finding.stackID)")
               Memcheck:Leak
               match-leak-kinds: \(finding.kind)
            \(lines.joined(separator: "\n"))
            }

            """
    }

    /// `leak:^FUNCTION$` for the first frame that is neither the allocator's nor the tracer's; nil when
    /// that frame has no function name (a module pattern would suppress every leak through the module).
    /// A name holding `$` is cut there and left open at the end, since LSan reads any `$` as an anchor.
    public static func leakSanitizerLine(for finding: LeakFinding) -> String? {
        guard let function = firstProgramFunction(of: finding) else { return nil }
        if let dollar = function.firstIndex(of: "$") { return "leak:^" + function[..<dollar] }
        return "leak:^" + function + "$"
    }

    static func firstProgramFunction(of finding: LeakFinding) -> String? {
        let frame = finding.allFrames.first { !AllocatorFrames.isAllocatorFrame($0) }
        guard let function = frame?.function, !function.isEmpty else { return nil }
        return function
    }
}
