/// Everything the check policy can reject: suppression files, sizes and counts, baseline files.
public enum CheckError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A suppression file could not be read.
    case unreadableFile(path: String, reason: String)
    /// A line of a suppression file that does not parse; `line` counts from 1.
    case suppressionSyntax(path: String, line: Int, message: String)
    /// A size (`--max-leaked`, `--max-peak`) that is not a number with an optional unit.
    case invalidSize(String, reason: String)
    /// A count (`--max-allocations`) that is not a whole number.
    case invalidCount(String, reason: String)
    /// A percentage that is not a finite non-negative number.
    case invalidPercent(String)
    /// A baseline file that does not decode.
    case invalidBaseline(path: String, reason: String)
    /// A baseline written by a newer malloctrace.
    case unsupportedBaselineVersion(path: String, found: Int, supported: Int)
    /// A file could not be written.
    case unwritableFile(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason): "\(path): cannot read: \(reason)"
        case .suppressionSyntax(let path, let line, let message): "\(path):\(line): \(message)"
        case .invalidSize(let text, let reason): "invalid size '\(text)': \(reason)"
        case .invalidCount(let text, let reason): "invalid count '\(text)': \(reason)"
        case .invalidPercent(let text): "invalid percentage '\(text)': expected a non-negative number"
        case .invalidBaseline(let path, let reason): "\(path): not a malloctrace baseline: \(reason)"
        case .unsupportedBaselineVersion(let path, let found, let supported):
            "\(path): baseline version \(found) is newer than the supported version \(supported)"
        case .unwritableFile(let path, let reason): "\(path): cannot write: \(reason)"
        }
    }
}
