import Foundation
public import MallocTraceAnalysis
public import MallocTraceFormat
import MallocTraceSymbolication

/// One side of a diff: a trace read in one pass, with its sites grouped by symbolized frames.
public struct DiffSide {
    public var tracePath: String
    public var process: ProcessDetails?
    public var end: EndDetails?
    public var isTruncated: Bool
    public var diagnostics: [String]
    public var summary: HeapSummary
    public var temporaryAllocations: UInt64
    public var temporaryBytes: UInt64
    public var durationNanoseconds: UInt64 { end?.time ?? summary.lastEventTime }
    var groups: [String: SiteGroup]
    var presenter: StackPresenter
    var symbolizer: Symbolizer
    var pass: TracePass
    /// The snapshot this side stands for (`TRACE@NAME`), if any.
    public var snapshot: String?
}

/// `TRACE@NAME` on the command line: a trace and one of its snapshots.
public enum SnapshotReference {
    /// The file and the snapshot name. A path that names an existing file is that file, whatever '@' it holds;
    /// otherwise the name follows the last '@' (empty: the whole trace).
    public static func parse(_ argument: String) -> (path: String, snapshot: String?) {
        if FileManager.default.fileExists(atPath: argument) { return (argument, nil) }
        guard let at = argument.lastIndex(of: "@") else { return (argument, nil) }
        let name = String(argument[argument.index(after: at)...])
        return (String(argument[..<at]), name.isEmpty ? nil : name)
    }
}

/// What changed for one group (a stack by its frames, a function, or a file) between two traces.
public struct DiffEntry: Sendable {
    /// Identity of the group in both traces: functions and modules, never addresses.
    public var key: String
    public var label: String
    /// Zero when the group is absent from that trace.
    public var before: SiteFigures
    public var after: SiteFigures
    public var stacksBefore: Int
    public var stacksAfter: Int
    /// The largest stack of the group, from the newer trace when it has the group.
    public var stack: [ReportFrame]

    public var peakChange: Int64 { Self.change(before.peakBytes, after.peakBytes) }
    public var leakedChange: Int64 { Self.change(before.leakedBytes, after.leakedBytes) }
    public var callsChange: Int64 { Self.change(before.allocationCalls, after.allocationCalls) }
    public var bytesChange: Int64 { Self.change(before.bytesAllocated, after.bytesAllocated) }
    public var temporaryChange: Int64 { Self.change(before.temporaryAllocations, after.temporaryAllocations) }

    /// `after - before`, saturating at the ends of Int64.
    static func change(_ before: UInt64, _ after: UInt64) -> Int64 {
        after >= before
            ? Int64(clamping: after - before)
            : (before - after > UInt64(Int64.max) ? Int64.min : -Int64(before - after))
    }
}

/// How diff entries are ordered: by the absolute change of one figure, or (`largest`) of whichever byte
/// figure — peak, leaked or allocated — changed most, ties broken by the change in calls.
public enum DiffOrder: String, CaseIterable, Sendable {
    case largest, peak, leaked, allocations, bytes

    func magnitude(_ entry: DiffEntry) -> (UInt64, UInt64) {
        let calls = entry.callsChange.magnitude
        switch self {
        case .largest:
            return (max(entry.peakChange.magnitude, entry.leakedChange.magnitude, entry.bytesChange.magnitude), calls)
        case .peak: return (entry.peakChange.magnitude, calls)
        case .leaked: return (entry.leakedChange.magnitude, calls)
        case .allocations: return (calls, entry.bytesChange.magnitude)
        case .bytes: return (entry.bytesChange.magnitude, calls)
        }
    }
}

/// `malloctrace diff A B`: per group deltas of peak, leaked bytes, allocation calls and bytes. Groups are
/// matched by symbolized frames (function and module of each frame, inlined calls included, allocator
/// frames folded as in reports), so two runs match whatever their addresses, stack ids or module paths.
public struct TraceDiff {
    public var before: DiffSide
    public var after: DiffSide
    public var options: ReportOptions
    public var order: DiffOrder
    /// The entries with a change, largest first, at most `options.top` of them.
    public var entries: [DiffEntry]
    /// Groups with a change (also those beyond `top`), groups found in both traces, in only one of them.
    public var changedGroups: Int
    public var matchedGroups: Int
    public var onlyBefore: Int
    public var onlyAfter: Int
    public var symbolization: SymbolizationNotes

    public static func make(
        before: String, after: String, options: ReportOptions, order: DiffOrder, progress: ProgressMeter = .silent
    ) throws(TraceError) -> TraceDiff {
        let first = try side(path: before, options: options, progress: progress)
        let second = try side(path: after, options: options, progress: progress)
        progress.finish()
        return TraceDiff(before: first, after: second, options: options, order: order)
    }

    /// The diff of two traces already open (the fuzzer's way in: no files).
    public static func make(
        before: TraceReader, after: TraceReader, options: ReportOptions, order: DiffOrder
    ) -> TraceDiff {
        let first = side(reader: before, options: options, progress: .silent)
        let second = side(reader: after, options: options, progress: .silent)
        return TraceDiff(before: first, after: second, options: options, order: order)
    }

    /// `path`, or `TRACE@SNAPSHOT`: the live set at that snapshot (a report bounded by it).
    static func side(path: String, options: ReportOptions, progress: ProgressMeter) throws(TraceError) -> DiffSide {
        let (file, snapshot) = SnapshotReference.parse(path)
        var options = options
        if let snapshot { options.filters.snapshot = snapshot }
        var side = side(reader: try TraceReader(path: file), options: options, progress: progress)
        try side.pass.checkMarks()
        side.snapshot = snapshot
        return side
    }

    static func side(reader: TraceReader, options: ReportOptions, progress: ProgressMeter) -> DiffSide {
        let symbolizer = Symbolizer(backend: options.symbolizer)
        symbolizer.traceStart = reader.process?.startRealtime
        let pass = TracePass.run(
            reader: reader, filters: options.filters, temporaryThreshold: options.temporaryThreshold,
            symbolizer: symbolizer, countsSizes: false, countsThreads: false, progress: progress)
        let presenter = StackPresenter(
            reader: reader, symbolizer: symbolizer,
            keepsAllocatorFrames: options.keepsAllocatorFrames)
        let groups = SiteGroup.make(
            sites: pass.sites, grouping: options.grouping, presenter: presenter, matchingFrames: true,
            progress: progress)
        return DiffSide(
            tracePath: reader.path, process: reader.process, end: reader.end, isTruncated: reader.isTruncated,
            diagnostics: reader.diagnostics.map(\.description) + samplingNote(reader.sampling),
            summary: pass.summary, temporaryAllocations: pass.temporaryAllocations, temporaryBytes: pass.temporaryBytes,
            groups: Dictionary(uniqueKeysWithValues: groups.map { ($0.key, $0) }), presenter: presenter,
            symbolizer: symbolizer, pass: pass)
    }

    /// A sampled side's figures are estimates and its counts are samples: say so next to the figures.
    static func samplingNote(_ sampling: SampleEstimator?) -> [String] {
        guard let sampling else { return [] }
        return [
            "sampled trace (one allocation per \(Formatting.bytes(sampling.rate)) on average): bytes are estimates,"
                + " counts are samples, temporary allocations are not measured"
        ]
    }

    init(before: DiffSide, after: DiffSide, options: ReportOptions, order: DiffOrder) {
        self.before = before
        self.after = after
        self.options = options
        self.order = order
        var all: [DiffEntry] = []
        for key in Set(before.groups.keys).union(after.groups.keys) {
            let old = before.groups[key], new = after.groups[key]
            guard let any = new ?? old else { continue }
            all.append(
                DiffEntry(
                    key: key, label: any.label, before: old?.figures ?? SiteFigures(),
                    after: new?.figures ?? SiteFigures(), stacksBefore: old?.members.count ?? 0,
                    stacksAfter: new?.members.count ?? 0, stack: []))
        }
        matchedGroups = all.count { $0.stacksBefore > 0 && $0.stacksAfter > 0 }
        onlyBefore = all.count { $0.stacksAfter == 0 }
        onlyAfter = all.count { $0.stacksBefore == 0 }
        let changed = all.filter {
            $0.peakChange != 0 || $0.leakedChange != 0 || $0.callsChange != 0 || $0.bytesChange != 0
                || $0.temporaryChange != 0
        }
        changedGroups = changed.count
        var top = Array(
            changed.sorted {
                let (first, second) = (order.magnitude($0), order.magnitude($1))
                return first != second ? first > second : $0.key < $1.key
            }
            .prefix(max(0, options.top)))
        var frames: [ReportFrame] = []
        for index in top.indices {
            let (side, group) =
                after.groups[top[index].key].map { (after, $0) } ?? before.groups[top[index].key].map { (before, $0) }
                ?? (after, nil)
            guard let group else { continue }
            let largest = group.members.max {
                ($0.figures.bytesAllocated, $1.stackID) < ($1.figures.bytesAllocated, $0.stackID)
            }
            if let largest {
                top[index].stack = side.presenter.frames(largest.stackID)
                frames += top[index].stack
            }
        }
        entries = top
        symbolization = Report.notes(for: frames, symbolizer: after.symbolizer)
    }
}
