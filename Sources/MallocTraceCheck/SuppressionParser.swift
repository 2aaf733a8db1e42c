import Foundation
import MallocTraceFormat
import MallocTraceReports

/// Reads suppression files in LeakSanitizer's and valgrind memcheck's syntax; one file may mix both.
///
/// - LSan: `TYPE:PATTERN` lines; `leak:` lines become suppressions, other types (`race:`, `signal:` …)
///   are ignored. `#` starts a comment line; blank lines are skipped; lines are trimmed.
/// - memcheck: `{`, a name line, `TOOL:KIND` (`Memcheck:Leak`; blocks of other kinds or tools are read
///   and ignored), an optional `match-leak-kinds:` line for leaks (a comma-separated list of `definite`,
///   `indirect`, `possible`, `reachable`, or `all`/`none`), at least one location line (`fun:`, `obj:`,
///   `src:FILE[:LINE]`, `...`), `}`.
public enum SuppressionParser {
    /// Parses the file at `path`.
    public static func parseFile(atPath path: String) throws(CheckError) -> [Suppression] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadableFile(path: path, reason: reasonText(error))
        }
        return try parse(text, path: path)
    }

    /// Parses `text`; `path` names it in origins and errors.
    public static func parse(_ text: String, path: String) throws(CheckError) -> [Suppression] {
        var parser = LineParser(path: path, lines: text.split(separator: "\n", omittingEmptySubsequences: false))
        return try parser.parseAll()
    }

    static func reasonText(_ error: any Error) -> String {
        if let cocoa = error as? CocoaError, let underlying = cocoa.userInfo[NSUnderlyingErrorKey] as? NSError {
            return underlying.localizedDescription.lowercased()
        }
        return (error as NSError).localizedDescription.lowercased()
    }
}

/// The line-by-line state of one parse.
private struct LineParser {
    let path: String
    let lines: [Substring]
    var index = 0

    init(path: String, lines: [Substring]) {
        self.path = path
        self.lines = lines
    }

    /// Line number (from 1) of the line last returned by ``next()``.
    var lineNumber: Int { index }

    /// The next line that is neither blank nor a comment, trimmed; nil at the end.
    mutating func next() -> String? {
        while index < lines.count {
            let line = lines[index].trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            index += 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            return line
        }
        return nil
    }

    func error(_ message: String, line: Int? = nil) -> CheckError {
        .suppressionSyntax(path: path, line: line ?? lineNumber, message: message)
    }

    mutating func parseAll() throws(CheckError) -> [Suppression] {
        var result: [Suppression] = []
        while let line = next() {
            if line.hasPrefix("{") {
                guard line == "{" else { throw error("expected a line holding only '{'") }
                if let block = try parseBlock() { result.append(block) }
            } else if let colon = line.firstIndex(of: ":"), isType(line[..<colon]) {
                guard line[..<colon] == "leak" else { continue }
                let pattern = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                guard !pattern.isEmpty else { throw error("empty pattern after 'leak:'") }
                result.append(
                    Suppression(
                        name: "leak:" + pattern, origin: "\(path):\(lineNumber)",
                        rule: .leakSanitizer(StackPattern(pattern))))
            } else if line == "}" {
                throw error("'}' without a block to close")
            } else {
                throw error("expected 'leak:PATTERN' or a '{' block, found '\(line)'")
            }
        }
        return result
    }

    /// LSan's suppression types are lowercase identifiers (`leak`, `called_from_lib`, `interceptor_via_fun`).
    func isType(_ text: Substring) -> Bool {
        !text.isEmpty && text.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }
    }

    /// After `{`: returns nil for blocks of other tools or kinds.
    mutating func parseBlock() throws(CheckError) -> Suppression? {
        let start = lineNumber
        guard let name = next(), name != "}" else { throw error("unterminated block: missing its name", line: start) }
        guard let kindLine = next(), kindLine != "}" else {
            throw error("unterminated block: missing its 'TOOL:KIND' line", line: start)
        }
        guard let colon = kindLine.firstIndex(of: ":") else {
            throw error("expected 'TOOL:KIND' (such as 'Memcheck:Leak'), found '\(kindLine)'")
        }
        let tools = kindLine[..<colon].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let isLeak = tools.contains("Memcheck") && kindLine[kindLine.index(after: colon)...] == "Leak"
        var kinds = Set(LeakKind.allCases)
        var frames: [MemcheckRule.FramePattern] = []
        var first = true
        while true {
            guard let line = next() else { throw error("unterminated block: no '}' before the end", line: start) }
            if line == "}" { break }
            if line == "{" { throw error("unterminated block: '{' inside the block opened on line \(start)") }
            defer { first = false }
            guard isLeak else { continue }
            if first && line.hasPrefix("match-leak-kinds:") {
                kinds = try leakKinds(line.dropFirst("match-leak-kinds:".count))
                continue
            }
            frames.append(try framePattern(line))
        }
        guard isLeak else { return nil }
        guard !frames.isEmpty else { throw error("block '\(name)' has no 'fun:', 'obj:' or 'src:' line", line: start) }
        return Suppression(
            name: name, origin: "\(path):\(start)", rule: .memcheck(MemcheckRule(kinds: kinds, frames: frames)))
    }

    func leakKinds(_ text: Substring) throws(CheckError) -> Set<LeakKind> {
        var kinds: Set<LeakKind> = []
        for item in text.split(separator: ",") {
            let word = item.trimmingCharacters(in: .whitespaces)
            switch word {
            case "all": kinds.formUnion(LeakKind.allCases)
            case "none": continue
            default:
                guard let kind = LeakKind(name: word) else {
                    throw error(
                        "unknown leak kind '\(word)' (expected definite, indirect, possible, reachable, all or none)")
                }
                kinds.insert(kind)
            }
        }
        return kinds
    }

    func framePattern(_ line: String) throws(CheckError) -> MemcheckRule.FramePattern {
        if line == "..." { return .ellipsis }
        if line.hasPrefix("fun:") { return .function(String(line.dropFirst(4))) }
        if line.hasPrefix("obj:") { return .object(String(line.dropFirst(4))) }
        if line.hasPrefix("src:") {
            let body = line.dropFirst(4)
            if let colon = body.lastIndex(of: ":"), let number = Int(body[body.index(after: colon)...]) {
                return .source(file: String(body[..<colon]), line: number)
            }
            return .source(file: String(body), line: nil)
        }
        throw error("expected 'fun:', 'obj:', 'src:' or '...', found '\(line)'")
    }
}
