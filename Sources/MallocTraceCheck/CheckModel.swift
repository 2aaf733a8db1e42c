public import MallocTraceFormat
public import MallocTraceReports

/// One leak finding: the blocks of one kind allocated from one call stack that were still live when the
/// process ended.
public struct LeakFinding: Sendable, Equatable {
    public var kind: LeakKind
    public var bytes: UInt64
    public var blocks: UInt64
    /// The trace's stack id (stable within one trace only).
    public var stackID: UInt32
    /// The libc function of the allocation (malloc, calloc, ...); nil when unknown.
    public var allocationFunction: AllocationFunction?
    /// Frames as reports show them: inlined calls expanded, allocator and runtime wrapper frames folded.
    public var frames: [ReportFrame]
    /// Every frame, nothing folded, innermost first: what suppressions are matched against.
    public var allFrames: [ReportFrame]

    public init(
        kind: LeakKind, bytes: UInt64, blocks: UInt64, stackID: UInt32, allocationFunction: AllocationFunction?,
        frames: [ReportFrame], allFrames: [ReportFrame]
    ) {
        self.kind = kind
        self.bytes = bytes
        self.blocks = blocks
        self.stackID = stackID
        self.allocationFunction = allocationFunction
        self.frames = frames
        self.allFrames = allFrames
    }
}

/// A limit that a process went over.
public struct LimitViolation: Sendable, Equatable {
    public enum Limit: String, Sendable, Equatable {
        case leakedBytes = "max-leaked"
        case peakBytes = "max-peak"
        case allocationCalls = "max-allocations"
        case baselineIncrease = "fail-on-increase"
    }

    public var limit: Limit
    /// What the limit allows (bytes, calls, or percent for the baseline).
    public var allowed: Double
    /// What the process reached; for the baseline, the growth in percent (infinite when the baseline
    /// figure was zero).
    public var actual: Double
    /// One line for humans: `peak 80.0 MiB is over --max-peak 64 MiB`.
    public var message: String
    /// For a baseline increase: the stacks that grew most, as shown frames, with their growth.
    public var grownSites: [GrownSite]

    public init(limit: Limit, allowed: Double, actual: Double, message: String, grownSites: [GrownSite] = []) {
        self.limit = limit
        self.allowed = allowed
        self.actual = actual
        self.message = message
        self.grownSites = grownSites
    }
}

/// A call stack whose figure grew against the baseline.
public struct GrownSite: Sendable, Equatable {
    /// The stack's identity across traces (ReportFrame.matchKey of each frame, joined with newlines).
    public var key: String
    public var frames: [ReportFrame]
    public var before: UInt64
    public var after: UInt64

    public init(key: String, frames: [ReportFrame], before: UInt64, after: UInt64) {
        self.key = key
        self.frames = frames
        self.before = before
        self.after = after
    }
}

/// How often one suppression matched.
public struct SuppressionUse: Sendable, Equatable {
    /// The suppression's name: the memcheck block name, the `leak:` line, or the built-in default's name.
    public var name: String
    /// Where it came from: a file path with line, or `built-in`.
    public var origin: String
    public var findings: Int
    public var bytes: UInt64
    public var blocks: UInt64

    public init(name: String, origin: String, findings: Int, bytes: UInt64, blocks: UInt64) {
        self.name = name
        self.origin = origin
        self.findings = findings
        self.bytes = bytes
        self.blocks = blocks
    }
}

/// Figures of one call stack over a whole run, for baselines (the leaked figures come from the findings).
public struct StackFigures: Sendable, Equatable {
    /// ``Baseline/stackKey(_:)`` of ``frames``.
    public var key: String
    /// The frames as shown.
    public var frames: [ReportFrame]
    /// Bytes this stack had live at the process's peak.
    public var peakBytes: UInt64
    public var allocationCalls: UInt64

    public init(key: String, frames: [ReportFrame], peakBytes: UInt64, allocationCalls: UInt64) {
        self.key = key
        self.frames = frames
        self.peakBytes = peakBytes
        self.allocationCalls = allocationCalls
    }
}

/// The verdict on one traced process.
public struct ProcessVerdict: Sendable {
    public var tracePath: String
    public var processID: UInt32?
    public var executable: String?
    public var arguments: [String]
    /// `exited normally`, `called _exit(3)`, `trace is truncated: ...`.
    public var endDescription: String
    /// False when the trace holds no complete leak scan: then every live block counts as definite.
    public var hasLeakScan: Bool
    /// The process replaced its image with exec: what it held went with the old image, and nothing counts.
    public var replacedByExec: Bool
    /// A scan was asked for, but the process never reached its exit (killed by a signal, still running): as
    /// under LeakSanitizer, which checks at exit only, nothing counts.
    public var endedBeforeScan: Bool
    /// Whether a reader must be told that live blocks count as definite for want of a scan.
    public var countsLiveBlocksWithoutScan: Bool { !hasLeakScan && !replacedByExec && !endedBeforeScan }
    /// Findings of the kinds that count, after suppressions, largest first.
    public var findings: [LeakFinding]
    /// Live blocks of the kinds that do not count (by kind), for the summary line.
    public var uncountedBytes: [LeakKind: UInt64]
    public var uncountedBlocks: [LeakKind: UInt64]
    public var suppressions: [SuppressionUse]
    public var violations: [LimitViolation]
    public var peakBytes: UInt64
    public var allocationCalls: UInt64
    /// Per-stack figures for baselines (peak contributors, allocation calls); may be empty.
    public var stacks: [StackFigures]
    /// Problems reading the trace that did not stop the verdict (truncation, damaged chunks).
    public var notes: [String]

    public init(
        tracePath: String, processID: UInt32?, executable: String?, arguments: [String], endDescription: String,
        hasLeakScan: Bool, findings: [LeakFinding], uncountedBytes: [LeakKind: UInt64] = [:],
        uncountedBlocks: [LeakKind: UInt64] = [:], suppressions: [SuppressionUse] = [],
        violations: [LimitViolation] = [], peakBytes: UInt64 = 0, allocationCalls: UInt64 = 0,
        stacks: [StackFigures] = [],
        notes: [String] = [], replacedByExec: Bool = false, endedBeforeScan: Bool = false
    ) {
        self.tracePath = tracePath
        self.processID = processID
        self.executable = executable
        self.arguments = arguments
        self.endDescription = endDescription
        self.hasLeakScan = hasLeakScan
        self.findings = findings
        self.uncountedBytes = uncountedBytes
        self.uncountedBlocks = uncountedBlocks
        self.suppressions = suppressions
        self.violations = violations
        self.peakBytes = peakBytes
        self.allocationCalls = allocationCalls
        self.stacks = stacks
        self.notes = notes
        self.replacedByExec = replacedByExec
        self.endedBeforeScan = endedBeforeScan
    }

    public var leakedBytes: UInt64 { findings.reduce(0) { $0 &+ $1.bytes } }
    public var leakedBlocks: UInt64 { findings.reduce(0) { $0 &+ $1.blocks } }
    /// False with `--max-leaked`: then leaks up to that size are tolerated and only the limit fails.
    public var leaksAreFailures = true

    public var failed: Bool { (leaksAreFailures && !findings.isEmpty) || !violations.isEmpty }
}

/// The verdict on every process of one `check`.
public struct CheckVerdict: Sendable {
    public var processes: [ProcessVerdict]
    /// The leak kinds that count as findings (`--leak-kinds`).
    public var countedKinds: Set<LeakKind>

    public init(processes: [ProcessVerdict], countedKinds: Set<LeakKind>) {
        self.processes = processes
        self.countedKinds = countedKinds
    }

    public var failed: Bool { processes.contains(where: \.failed) }
}
