public import MallocTraceFormat

/// Selects the allocations a report covers — by time, by allocating thread, by call stack — in the same
/// single pass as the analysis, so every figure (the peak too) describes the selected allocations alone.
///
/// An allocation is selected when its time lies in ``timeRange``, its thread is in ``threads`` and
/// ``acceptsStack`` accepts its stack. A release is passed on when it releases a selected block (whichever
/// thread frees it) and happens within ``timeRange``: blocks still live at the end of the window count as
/// "leaked". Releases of blocks that were not selected are dropped, so they are
/// neither frees nor unmatched frees. Mark bounds (``fromMark``, ``toMark``) work the same way in sequence
/// order. Control events always pass. Memory: one entry per live block that was not selected.
public struct EventFilter {
    /// Nanoseconds since start, inclusive; nil: all of the trace.
    public var timeRange: ClosedRange<UInt64>?
    /// Allocating threads; nil: all.
    public var threads: Set<UInt32>?
    /// Decides for a stack id; asked once per id (answers are cached). nil: all stacks.
    public var acceptsStack: ((UInt32) -> Bool)?
    /// Bounds in sequence order (exact, unlike times): the window opens at the first mark (or snapshot) named
    /// `from` and closes at the first one named `to` after that. nil: the start, the end.
    public var fromMark: MarkBound? {
        didSet { isOpen = fromMark == nil }
    }
    public var toMark: MarkBound?

    /// A mark or snapshot, by kind and name.
    public struct MarkBound: Sendable, Equatable {
        public var kind: AllocationFunction
        public var name: String
        let hash: UInt64

        public static func mark(_ name: String) -> MarkBound {
            MarkBound(kind: .mark, name: name, hash: ControlNames.hash(name))
        }

        public static func snapshot(_ name: String) -> MarkBound {
            MarkBound(kind: .snapshot, name: name, hash: ControlNames.hash(name))
        }

        func matches(_ event: AllocatorEvent) -> Bool { event.function == kind && event.address == hash }
    }

    /// Whether the window of the mark bounds is open now; the bounds met so far.
    private var isOpen = true
    public private(set) var metFromMark = false
    public private(set) var metToMark = false

    private var excluded = Set<UInt64>()
    private var stackAnswers: [UInt32: Bool] = [:]

    public init(
        timeRange: ClosedRange<UInt64>? = nil, threads: Set<UInt32>? = nil, acceptsStack: ((UInt32) -> Bool)? = nil
    ) {
        self.timeRange = timeRange
        self.threads = threads
        self.acceptsStack = acceptsStack
    }

    /// True when nothing is filtered: ``accept(_:)`` would pass every event.
    public var isEmpty: Bool {
        timeRange == nil && threads == nil && acceptsStack == nil && fromMark == nil && toMark == nil
    }

    private mutating func stackIsAccepted(_ stackID: UInt32) -> Bool {
        guard let acceptsStack else { return true }
        if let answer = stackAnswers[stackID] { return answer }
        let answer = acceptsStack(stackID)
        stackAnswers[stackID] = answer
        return answer
    }

    /// Whether the analysis should see `event`.
    public mutating func accept(_ event: AllocatorEvent) -> Bool {
        switch event.kind {
        case .allocation, .failedAllocation:
            let selected =
                isOpen && (timeRange?.contains(event.time) ?? true) && (threads?.contains(event.threadID) ?? true)
                && stackIsAccepted(event.stackID)
            if event.kind == .allocation {
                if selected {
                    if !excluded.isEmpty { excluded.remove(event.address) }  // its release went untraced
                } else {
                    excluded.insert(event.address)
                }
            }
            return selected
        case .release:
            if !excluded.isEmpty && excluded.remove(event.address) != nil { return false }
            return isOpen && (timeRange?.contains(event.time) ?? true)
        case .control:
            if let fromMark, !metFromMark, fromMark.matches(event) {
                metFromMark = true
                isOpen = true
            } else if let toMark, !metToMark, fromMark == nil || metFromMark, toMark.matches(event) {
                metToMark = true
                isOpen = false
            }
            return true
        }
    }
}
