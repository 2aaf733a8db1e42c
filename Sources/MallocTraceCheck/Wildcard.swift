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

    /// Backtrack-to-last-star walk: O(text × pattern) at worst. `?` matches one byte, so a pattern matches
    /// a multi-byte character with as many `?` as it has UTF-8 bytes (valgrind matches bytes too).
    public func matches(_ text: String) -> Bool {
        let text = Array(text.utf8)
        let (asterisk, question) = (UInt8(ascii: "*"), UInt8(ascii: "?"))
        var (t, p) = (0, 0)
        var star: (pattern: Int, text: Int)?
        while t < text.count {
            if p < bytes.count && bytes[p] == asterisk {
                star = (p, t)
                p += 1
            } else if p < bytes.count && (bytes[p] == question || bytes[p] == text[t]) {
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
        while p < bytes.count && bytes[p] == asterisk { p += 1 }
        return p == bytes.count
    }
}
