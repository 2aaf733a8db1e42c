/// Why a trace file could not be read at all. Damage inside an otherwise readable trace is not an error:
/// it becomes a ``TraceDiagnostic`` and the report covers what could be read.
public enum TraceError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case notATrace(path: String, reason: String)
    case unsupportedVersion(path: String, found: Int, supported: Int)
    case corruptHeader(path: String, offset: Int, reason: String)
    /// A version 2+ file whose header flags name features this reader does not know.
    case unsupportedFeatures(path: String, flags: UInt32)
    /// A report or diff bounded by a mark or snapshot (`kind`) that the trace does not hold; `known` lists
    /// the names it does hold, of that kind.
    case unknownMark(path: String, kind: String, name: String, known: [String])

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "cannot open \(path): \(reason)"
        case .notATrace(let path, let reason):
            return "\(path) is not a malloctrace trace: \(reason)"
        case .unsupportedVersion(let path, let found, let supported):
            return "\(path) is trace format version \(found), but this malloctrace reads versions up to \(supported);"
                + " use a newer malloctrace"
        case .corruptHeader(let path, let offset, let reason):
            return "\(path) is damaged at byte \(offset): \(reason)"
        case .unsupportedFeatures(let path, let flags):
            return "\(path) uses trace features this malloctrace does not know (header flags 0x"
                + String(flags, radix: 16) + "); use a newer malloctrace"
        case .unknownMark(let path, let kind, let name, let known):
            let list =
                known.isEmpty
                ? "it has none" : "it has " + known.map { "'\($0.escapingControlCharacters)'" }.joined(separator: ", ")
            return "\(path) has no \(kind) named '\(name.escapingControlCharacters)' (\(list))"
        }
    }
}

/// Damage found while reading; the rest of the trace is still used.
public struct TraceDiagnostic: Sendable, Equatable, CustomStringConvertible {
    /// File offset of the damaged bytes.
    public var offset: Int
    public var message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { "byte \(offset): \(message)" }
}
