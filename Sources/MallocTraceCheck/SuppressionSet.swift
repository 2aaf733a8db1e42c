/// The suppressions of one `check`, in order: the built-in defaults, then each file as given.
public struct SuppressionSet: Sendable {
    public var suppressions: [Suppression]

    public init(_ suppressions: [Suppression]) {
        self.suppressions = suppressions
    }

    /// The defaults (unless `includeDefaults` is false: `--no-default-suppressions`), then every file.
    public static func load(files: [String], includeDefaults: Bool = true) throws(CheckError) -> SuppressionSet {
        var all = includeDefaults ? DefaultSuppression.all.map(\.suppression) : []
        for file in files { all += try SuppressionParser.parseFile(atPath: file) }
        return SuppressionSet(all)
    }

    /// Findings split by the suppressions.
    public struct Outcome: Sendable, Equatable {
        /// Findings no suppression matched, in their original order.
        public var kept: [LeakFinding]
        public var suppressed: [LeakFinding]
        /// Every suppression that matched at least once, in the set's order.
        public var uses: [SuppressionUse]
    }

    /// Index of the first suppression that matches `finding`.
    public func firstMatch(for finding: LeakFinding) -> Int? {
        suppressions.firstIndex { $0.matches(finding) }
    }

    /// Partitions `findings`; each suppressed finding counts for the first suppression that matches it.
    /// O(findings × suppressions × frames).
    public func apply(to findings: [LeakFinding]) -> Outcome {
        var outcome = Outcome(kept: [], suppressed: [], uses: [])
        var uses: [Int: SuppressionUse] = [:]
        for finding in findings {
            guard let index = firstMatch(for: finding) else {
                outcome.kept.append(finding)
                continue
            }
            outcome.suppressed.append(finding)
            let suppression = suppressions[index]
            var use =
                uses[index]
                ?? SuppressionUse(name: suppression.name, origin: suppression.origin, findings: 0, bytes: 0, blocks: 0)
            use.findings += 1
            use.bytes &+= finding.bytes
            use.blocks &+= finding.blocks
            uses[index] = use
        }
        outcome.uses = uses.sorted { $0.key < $1.key }.map(\.value)
        return outcome
    }
}
