internal import CMallocTraceFormat

/// How a block stood when the process scanned its memory for pointers (the exit-time leak scan), as
/// LeakSanitizer and valgrind memcheck define the kinds.
public enum LeakKind: UInt8, Sendable, CaseIterable, Codable, Comparable, CustomStringConvertible {
    /// A pointer to its start was reachable from a root: globals, stacks, registers, TLS.
    case reachable = 0
    /// Reachable only from leaked blocks.
    case indirect = 1
    /// Reachable from a root only through pointers into its interior.
    case possible = 2
    /// No pointer to it anywhere (or the one member of a rootless cycle chosen as its root).
    case definite = 3

    /// The lowercase name used in options, suppressions and JSON.
    public var description: String {
        switch self {
        case .reachable: "reachable"
        case .indirect: "indirect"
        case .possible: "possible"
        case .definite: "definite"
        }
    }

    public init?(name: String) {
        guard let kind = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = kind
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}
