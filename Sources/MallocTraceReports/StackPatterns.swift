/// LeakSanitizer-style patterns for `--include` and `--exclude`: a pattern matches a text when it occurs in
/// it, `*` stands for any run of characters, and `^` / `$` anchor it to the start / end.
public struct StackPattern: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    /// The pattern as a whole-text glob: unanchored ends became `*`.
    private let glob: [UInt8]

    public init(_ pattern: String) {
        description = pattern
        var body = Substring(pattern)
        let anchoredStart = body.hasPrefix("^")
        if anchoredStart { body = body.dropFirst() }
        let anchoredEnd = body.hasSuffix("$")
        if anchoredEnd { body = body.dropLast() }
        glob = Array(((anchoredStart ? "" : "*") + body + (anchoredEnd ? "" : "*")).utf8)
    }

    /// Glob match with `*` only, by the usual backtrack-to-last-star walk: O(text × pattern) at worst.
    public func matches(_ text: String) -> Bool {
        let text = Array(text.utf8)
        var (t, p) = (0, 0)
        var star: (pattern: Int, text: Int)?
        let asterisk = UInt8(ascii: "*")
        while t < text.count {
            if p < glob.count && glob[p] == asterisk {
                star = (p, t)
                p += 1
            } else if p < glob.count && glob[p] == text[t] {
                t += 1
                p += 1
            } else if let previous = star {
                p = previous.pattern + 1
                t = previous.text + 1
                star = (previous.pattern, previous.text + 1)
            } else {
                return false
            }
        }
        while p < glob.count && glob[p] == asterisk { p += 1 }
        return p == glob.count
    }

    /// True when the pattern matches the frame's function, its module's path or file name, or its source file.
    public func matches(_ frame: ReportFrame) -> Bool {
        [frame.function, frame.module, frame.moduleName, frame.file].contains { $0.map(matches) ?? false }
    }
}
