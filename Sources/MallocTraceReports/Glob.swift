/// Whole-text wildcard matching over UTF-8 bytes, shared by `--include`/`--exclude` patterns and valgrind
/// suppression wildcards: `*` matches any run of bytes (none included), and `?`, when the caller's syntax
/// has it, exactly one byte.
public enum Glob {
    /// The backtrack-to-last-star walk: O(text × pattern) at worst, never exponential.
    public static func matches(_ pattern: [UInt8], _ text: [UInt8], questionMarkIsWildcard: Bool) -> Bool {
        let (asterisk, question) = (UInt8(ascii: "*"), UInt8(ascii: "?"))
        var (t, p) = (0, 0)
        var star: (pattern: Int, text: Int)?
        while t < text.count {
            if p < pattern.count && pattern[p] == asterisk {
                star = (p, t)
                p += 1
            } else if p < pattern.count
                && (pattern[p] == text[t] || (questionMarkIsWildcard && pattern[p] == question))
            {
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
        while p < pattern.count && pattern[p] == asterisk { p += 1 }
        return p == pattern.count
    }
}
