public import MallocTraceFormat

/// The body of a valgrind memcheck `Memcheck:Leak` suppression: the leak kinds it applies to and its
/// frame patterns, matched from the innermost frame outward against a prefix of the stack.
public struct MemcheckRule: Sendable, Equatable {
    /// One location line of a block.
    public enum FramePattern: Sendable, Equatable, CustomStringConvertible {
        /// `fun:PATTERN`: the function name (demangled, or one of the few mangled names we can derive).
        case function(String)
        /// `obj:PATTERN`: the module's path.
        case object(String)
        /// `src:FILE` or `src:FILE:LINE`: the source file's name (or path) and line.
        case source(file: String, line: Int?)
        /// `...`: zero or more frames.
        case ellipsis

        public var description: String {
            switch self {
            case .function(let pattern): "fun:\(pattern)"
            case .object(let pattern): "obj:\(pattern)"
            case .source(let file, let line): "src:\(file)" + (line.map { ":\($0)" } ?? "")
            case .ellipsis: "..."
            }
        }
    }

    /// `match-leak-kinds:`; every kind when the block has no such line (as valgrind does).
    public var kinds: Set<LeakKind>
    public var frames: [FramePattern]

    public init(kinds: Set<LeakKind> = Set(LeakKind.allCases), frames: [FramePattern]) {
        self.kinds = kinds
        self.frames = frames
    }

    /// True when the rule's kinds include the finding's and its frames match a prefix of
    /// ``MemcheckStack/frames(of:)``.
    public func matches(_ finding: LeakFinding) -> Bool {
        guard kinds.contains(finding.kind) else { return false }
        return matches(MemcheckStack.frames(of: finding))
    }

    /// Prefix match with `...` by dynamic programming over (pattern, frame) positions: O(patterns × frames).
    func matches(_ stack: [MemcheckStack.Frame]) -> Bool {
        let patterns = frames.map(CompiledPattern.init)
        // reachable[i][j]: patterns[i...] can match stack[j...] as a prefix.
        var reachable = [[Bool]](repeating: [Bool](repeating: false, count: stack.count + 1), count: patterns.count + 1)
        for j in 0...stack.count { reachable[patterns.count][j] = true }
        for i in stride(from: patterns.count - 1, through: 0, by: -1) {
            for j in stride(from: stack.count, through: 0, by: -1) {
                if case .ellipsis = patterns[i] {
                    reachable[i][j] = reachable[i + 1][j] || (j < stack.count && reachable[i][j + 1])
                } else {
                    reachable[i][j] = j < stack.count && patterns[i].matches(stack[j]) && reachable[i + 1][j + 1]
                }
            }
        }
        return reachable[0][0]
    }
}

/// A frame pattern with its wildcards prepared.
private enum CompiledPattern {
    case function(Wildcard)
    case object(Wildcard)
    case source(Wildcard, line: Int?)
    case ellipsis

    init(_ pattern: MemcheckRule.FramePattern) {
        switch pattern {
        case .function(let text): self = .function(Wildcard(text))
        case .object(let text): self = .object(Wildcard(text))
        case .source(let file, let line): self = .source(Wildcard(file), line: line)
        case .ellipsis: self = .ellipsis
        }
    }

    /// valgrind shows `???` for what it does not know, and `*` matches that too.
    func matches(_ frame: MemcheckStack.Frame) -> Bool {
        switch self {
        case .function(let pattern):
            return pattern.matches(frame.function ?? "???") || frame.mangledNames.contains(where: pattern.matches)
        case .object(let pattern):
            return pattern.matches(frame.object ?? "???")
        case .source(let pattern, let line):
            guard let file = frame.file else { return pattern.matches("???") && line == nil }
            let fileName = file.split(separator: "/").last.map(String.init) ?? file
            guard pattern.matches(fileName) || pattern.matches(file) else { return false }
            return line == nil || line == frame.line
        case .ellipsis:
            return true
        }
    }
}
