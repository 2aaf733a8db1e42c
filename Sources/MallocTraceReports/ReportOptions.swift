public import MallocTraceFormat
public import MallocTraceSymbolication

/// The parts of a report, in the order they are printed.
public enum ReportSection: String, CaseIterable, Sendable {
    /// Runtime, calls, bytes, peak, leaks, temporary allocations.
    case summary
    /// Live bytes per group at the moment of the global peak.
    case peak
    /// Groups with the most allocation calls.
    case allocations
    /// Groups with the most bytes allocated.
    case bytes
    /// Groups with the most temporary allocations.
    case temporary
    /// Blocks never freed, per group.
    case leaks
    /// Allocation calls and bytes by size, in power-of-two buckets.
    case histogram
    /// Calls and bytes per thread.
    case threads

    /// True for the sections that list groups of call stacks.
    public var listsSites: Bool { [.peak, .leaks, .allocations, .bytes, .temporary].contains(self) }
}

/// What the allocation sites of a report are: each call stack, or all stacks whose first shown frame is in
/// the same function, or in the same source file.
public enum StackGrouping: String, CaseIterable, Sendable {
    case stack, function, file
}

/// Which allocations a report covers (see ``EventFilter`` for the exact rules).
public struct ReportFilters: Sendable, Equatable {
    /// Seconds since the process started, inclusive.
    public var from: Double?
    public var to: Double?
    /// Allocating thread ids; empty: all.
    public var threads: [UInt32] = []
    /// Keep only stacks with a frame matching one of these; empty: all.
    public var include: [StackPattern] = []
    /// Drop stacks with a frame matching one of these.
    public var exclude: [StackPattern] = []
    /// Bounds in sequence order at marks (malloctrace_mark): from the first mark named `fromMark`, to the first
    /// one named `toMark` after it.
    public var fromMark: String?
    public var toMark: String?
    /// Ends the report at the first snapshot of this name (malloctrace_snapshot): its "leaked" figures are the
    /// live set at that moment. Takes the place of `toMark`.
    public var snapshot: String?

    public init() {}

    /// Seconds as nanoseconds since start, saturating: `--from 1e11` means "after everything", not a trap.
    public static func nanoseconds(_ seconds: Double) -> UInt64 {
        guard seconds.isFinite, seconds > 0 else { return seconds == .infinity ? .max : 0 }
        let value = seconds * 1e9
        return value >= 18_446_744_073_709_551_615.0 ? .max : UInt64(value)
    }

    public var isEmpty: Bool {
        from == nil && to == nil && threads.isEmpty && include.isEmpty && exclude.isEmpty && fromMark == nil
            && toMark == nil && snapshot == nil
    }

    /// The filters in words, for the report's header.
    public var summary: String {
        var parts: [String] = []
        if from != nil || to != nil {
            let start = Formatting.decimal(from ?? 0, places: 3)
            parts.append(
                "allocated from \(start) s" + (to.map { " to \(Formatting.decimal($0, places: 3)) s" } ?? " on"))
        }
        if let snapshot {
            parts.append("live at snapshot '\(snapshot)'" + (fromMark.map { ", allocated from mark '\($0)'" } ?? ""))
        } else if fromMark != nil || toMark != nil {
            parts.append(
                "allocated " + (fromMark.map { "from mark '\($0)'" } ?? "from the start")
                    + (toMark.map { " to mark '\($0)'" } ?? " on"))
        }
        if !threads.isEmpty { parts.append("by thread " + threads.map(String.init).joined(separator: ", ")) }
        if !include.isEmpty { parts.append("stacks matching " + include.map { "'\($0)'" }.joined(separator: " or ")) }
        if !exclude.isEmpty { parts.append("except " + exclude.map { "'\($0)'" }.joined(separator: " or ")) }
        return parts.joined(separator: "; ")
    }
}

/// Everything that shapes a report besides the trace.
public struct ReportOptions: Sendable {
    /// The sections to produce, in any order (they are printed in ``ReportSection`` order).
    public var sections: Set<ReportSection> = Set(ReportSection.allCases)
    /// Entries per list section unless ``topBySection`` says otherwise.
    public var top = 10
    public var topBySection: [ReportSection: Int] = [:]
    public var grouping = StackGrouping.stack
    /// Show the tracer's and allocation wrappers' frames instead of folding them away.
    public var keepsAllocatorFrames = false
    /// Add the allocator's view (`report --allocator`): usable sizes, mmap against heap, the gap to RSS.
    public var showsAllocator = false
    /// Other allocations of the same thread allowed between a temporary block's allocation and its free.
    public var temporaryThreshold = 0
    public var filters = ReportFilters()
    public var symbolizer = Symbolizer.Backend.automatic
    /// The leak kinds that count as leaks when the trace has a leak scan (`--leak-kinds`).
    public var leakKinds = LeakKind.countedByDefault

    public init() {}

    /// How many entries `section` lists.
    public func limit(for section: ReportSection) -> Int { topBySection[section] ?? top }
}
