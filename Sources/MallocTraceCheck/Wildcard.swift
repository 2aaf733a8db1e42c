import MallocTraceReports

/// valgrind's suppression wildcards: `*` matches any run of characters (none included), `?` exactly one,
/// and the pattern must match the whole text (valgrind's `VG_(string_match)`). Nothing can be escaped.
public struct Wildcard: Sendable, Equatable, Hashable {
    public let pattern: String
    private let bytes: [UInt8]

    public init(_ pattern: String) {
        self.pattern = pattern
        bytes = Array(pattern.utf8)
    }

    /// True when the pattern has no wildcard character, so it matches exactly one text.
    var isLiteral: Bool { !bytes.contains(UInt8(ascii: "*")) && !bytes.contains(UInt8(ascii: "?")) }

    /// ``Glob`` with `?`: O(text × pattern) at worst. `?` matches one byte, so a pattern matches a multi-byte
    /// character with as many `?` as it has UTF-8 bytes (valgrind matches bytes too).
    public func matches(_ text: String) -> Bool {
        Glob.matches(bytes, Array(text.utf8), questionMarkIsWildcard: true)
    }
}
