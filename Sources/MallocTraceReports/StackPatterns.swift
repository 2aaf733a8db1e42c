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

    /// Glob match with `*` only (``Glob``): O(text × pattern) at worst.
    public func matches(_ text: String) -> Bool {
        Glob.matches(glob, Array(text.utf8), questionMarkIsWildcard: false)
    }

    /// True when the pattern matches the frame's function, its module's path or file name, or its source file.
    public func matches(_ frame: ReportFrame) -> Bool {
        [frame.function, frame.module, frame.moduleName, frame.file].contains { $0.map(matches) ?? false }
    }
}
