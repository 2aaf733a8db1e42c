public import MallocTraceFormat

/// Bytes and blocks.
public struct LeakAmount: Sendable, Equatable {
    public var bytes: UInt64 = 0
    public var blocks: UInt64 = 0

    public init(bytes: UInt64 = 0, blocks: UInt64 = 0) {
        self.bytes = bytes
        self.blocks = blocks
    }

    public static func += (total: inout LeakAmount, part: LeakAmount) {
        total.bytes +|= part.bytes
        total.blocks &+= part.blocks
    }
}

/// Blocks live at the end of a trace, split by the kind the process's leak scan gave them. Blocks the scan
/// did not see (no scan in the trace, or allocated after it) are ``unclassified``.
public struct LeakBreakdown: Sendable, Equatable {
    public var byKind: [LeakKind: LeakAmount] = [:]
    public var unclassified = LeakAmount()

    public init() {}

    public subscript(kind: LeakKind) -> LeakAmount { byKind[kind] ?? LeakAmount() }

    /// Adds one block of `kind` (nil: unclassified).
    public mutating func add(_ kind: LeakKind?, bytes: UInt64) {
        if let kind {
            byKind[kind, default: LeakAmount()] += LeakAmount(bytes: bytes, blocks: 1)
        } else {
            unclassified += LeakAmount(bytes: bytes, blocks: 1)
        }
    }

    /// What counts as leaked when the trace has a scan: the blocks of `counted` kinds. Blocks the scan did
    /// not see (allocated after it, or in flight in another thread while it froze the table) are not known
    /// to be leaks and do not count; reports show them as not scanned.
    public func leaked(counting counted: Set<LeakKind>) -> LeakAmount {
        var total = LeakAmount()
        for (kind, amount) in byKind where counted.contains(kind) { total += amount }
        return total
    }

    public var isEmpty: Bool { unclassified.blocks == 0 && byKind.values.allSatisfy { $0.blocks == 0 } }

    public static func += (total: inout LeakBreakdown, part: LeakBreakdown) {
        total.unclassified += part.unclassified
        for (kind, amount) in part.byKind { total.byKind[kind, default: LeakAmount()] += amount }
    }
}
