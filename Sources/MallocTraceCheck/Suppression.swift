public import MallocTraceFormat
public import MallocTraceReports

/// One suppression: a LeakSanitizer `leak:` line or a valgrind memcheck `Memcheck:Leak` block.
public struct Suppression: Sendable, Equatable {
    /// How a suppression recognizes a leak.
    public enum Rule: Sendable, Equatable {
        /// LeakSanitizer's `leak:PATTERN`: the pattern (``StackPattern``: substring, `*`, `^`, `$`) matches
        /// the function, the source file or the module path of any frame (``LeakFinding/allFrames``), as
        /// LSan checks every frame. Kinds do not matter: LSan reports direct and indirect leaks alike.
        ///
        /// Differences from LSan's `TemplateMatch`: ours backtracks, so it also matches where LSan's greedy
        /// search gives up early (`a*b$` against `ab_b`), and `$` is an anchor only at the end.
        case leakSanitizer(StackPattern)
        /// valgrind memcheck's block; see ``MemcheckRule`` and ``MemcheckStack``.
        case memcheck(MemcheckRule)
        /// Built-in defaults only: the blocks of `kinds` whose first shown frame (allocator and runtime
        /// layers folded, ``LeakFinding/frames``) lies in a module matching the wildcard: memory a library
        /// allocated itself, not memory the program allocated through it.
        case allocatedBy(module: Wildcard, kinds: Set<LeakKind>)
    }

    /// The memcheck block's name, the `leak:` line itself, or the built-in default's name.
    public var name: String
    /// `FILE:LINE` where it was read, or `built-in`.
    public var origin: String
    public var rule: Rule

    public init(name: String, origin: String, rule: Rule) {
        self.name = name
        self.origin = origin
        self.rule = rule
    }

    /// True when the suppression covers `finding`. O(frames × pattern length).
    public func matches(_ finding: LeakFinding) -> Bool {
        switch rule {
        case .leakSanitizer(let pattern):
            return finding.allFrames.contains { pattern.matches($0) }
        case .memcheck(let rule):
            return rule.matches(finding)
        case .allocatedBy(let module, let kinds):
            // A stack cut short inside the allocation layers folds to nothing: its outermost frame decides.
            let first = finding.frames.first { !AllocatorFrames.isAllocatorFrame($0) } ?? finding.frames.last
            guard kinds.contains(finding.kind), let path = first?.module else { return false }
            return module.matches(path)
        }
    }
}
