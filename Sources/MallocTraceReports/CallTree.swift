import MallocTraceAnalysis
public import MallocTraceFormat
import MallocTraceSymbolication

/// A figure a flame graph or an export can weigh frames by.
public enum CallTreeMetric: String, CaseIterable, Sendable {
    /// Bytes live at the moment of the global peak.
    case peak
    /// Bytes never freed (the leak kinds the report counts, when the trace has a leak scan).
    case leaked
    /// Bytes allocated over the whole run.
    case allocated
    /// Allocation calls (samples, for a sampled trace).
    case calls
    /// Temporary allocations (freed by their thread with few allocations in between).
    case temporary

    /// The figure of `figures` this metric weighs by.
    public func value(_ figures: SiteFigures) -> UInt64 {
        switch self {
        case .peak: figures.peakBytes
        case .leaked: figures.leakedBytes
        case .allocated: figures.bytesAllocated
        case .calls: figures.allocationCalls
        case .temporary: figures.temporaryAllocations
        }
    }

    /// The blocks (or calls) behind ``value(_:)``.
    public func blocks(_ figures: SiteFigures) -> UInt64 {
        switch self {
        case .peak: figures.peakBlocks
        case .leaked: figures.leakedBlocks
        case .allocated, .calls: figures.allocationCalls
        case .temporary: figures.temporaryAllocations
        }
    }

    /// True when ``value(_:)`` is a number of bytes (else a count).
    public var isBytes: Bool { self == .peak || self == .leaked || self == .allocated }

    /// How the metric is named in titles: `bytes live at the peak`.
    public var title: String {
        switch self {
        case .peak: "bytes live at the peak"
        case .leaked: "bytes leaked"
        case .allocated: "bytes allocated"
        case .calls: "allocation calls"
        case .temporary: "temporary allocations"
        }
    }
}

/// One call stack of a trace as exports see it: its frames, outermost first, and its figures.
public struct ProfileStack: Sendable {
    public var stackID: UInt32
    /// Shown frames (inlined calls expanded, allocator frames folded unless kept), outermost first.
    public var frames: [ReportFrame]
    public var figures: SiteFigures

    /// The frames grouped by return address, innermost address first; within one address its inlined
    /// calls come first and the function that contains the address last (pprof's `Location.line` order).
    public var locations: [[ReportFrame]] {
        var result: [[ReportFrame]] = []
        var group: [ReportFrame] = []
        for frame in frames.reversed() {
            if let last = group.last, last.address != frame.address || !last.isInlined {
                result.append(group)
                group = []
            }
            group.append(frame)
        }
        if !group.isEmpty { result.append(group) }
        return result
    }
}

/// The allocation sites of a finished pass with every frame resolved: the one model that the flame graph,
/// the folded stacks, the exports and the HTML report render.
public struct StackProfile: Sendable {
    /// Every stack with any figure, in stack id order.
    public var stacks: [ProfileStack]
    /// The figures of all stacks together.
    public var total: SiteFigures
    /// The loaded modules (for exports that list mappings).
    public var modules: [Module]
    /// Present for a sampled trace: byte figures are estimates, counts are samples.
    public var sampling: SampleEstimator?
    public var process: ProcessDetails?
    public var durationNanoseconds: UInt64

    /// A profile of the given stacks (tests build them by hand).
    init(stacks: [ProfileStack], modules: [Module] = []) {
        self.stacks = stacks
        total = SiteFigures()
        for stack in stacks { total += stack.figures }
        self.modules = modules
        sampling = nil
        process = nil
        durationNanoseconds = 0
    }

    /// Several processes' profiles as one (`export --merge`): all their stacks, all their modules.
    public init(merging profiles: [StackProfile]) {
        stacks = profiles.flatMap(\.stacks)
        total = SiteFigures()
        for profile in profiles { total += profile.total }
        var seen = Set<String>()
        modules = profiles.flatMap(\.modules).filter { seen.insert($0.path).inserted }
        sampling = profiles.lazy.compactMap(\.sampling).first
        process = profiles.first?.process
        durationNanoseconds = profiles.map(\.durationNanoseconds).max() ?? 0
    }

    /// Resolves every frame of every stack of `pass` with `presenter`. O(stacks × depth), plus symbolization
    /// of each distinct address once.
    public init(pass: TracePass, presenter: StackPresenter, progress: ProgressMeter = .silent) {
        presenter.prepareFrames(pass.sites.keys, progress: progress)
        var total = SiteFigures()
        stacks = pass.sites.keys.sorted().compactMap { id in
            guard let figures = pass.sites[id] else { return nil }
            total += figures
            return ProfileStack(stackID: id, frames: presenter.frames(id).reversed(), figures: figures)
        }
        self.total = total
        modules = pass.reader.modules
        sampling = pass.reader.sampling
        process = pass.reader.process
        durationNanoseconds = pass.reader.end?.time ?? pass.summary.lastEventTime
    }

    /// Runs a full pass over one trace and resolves every frame (what `flamegraph` and `export` read).
    public static func make(
        tracePath: String, options: ReportOptions = ReportOptions(), progress: ProgressMeter = .silent,
        observer: ((Span<AllocatorEvent>) -> Void)? = nil
    ) throws(TraceError) -> StackProfile {
        let (pass, symbolizer) = try TracePass.run(
            tracePath: tracePath, options: options, countsSizes: false, countsThreads: false, progress: progress,
            observer: observer)
        let reader = pass.reader
        let presenter = StackPresenter(
            resolver: FrameResolver(modules: reader.modules, symbolizer: symbolizer), stacks: reader.stacks,
            keepsAllocatorFrames: options.keepsAllocatorFrames)
        let profile = StackProfile(pass: pass, presenter: presenter, progress: progress)
        progress.finish()
        return profile
    }
}

/// A tree of frames, the root being the whole program and each child a callee, as flame graphs draw it.
/// Nodes merge frames of the same function in the same module at the same call path; each node carries the
/// figures of every stack through it.
public struct CallTree: Sendable {
    public struct Node: Sendable {
        /// What the flame graph prints: the function, else `module+0xoffset`.
        public var name: String
        /// Module file name, source file and line of the first frame merged here (nil for the root and
        /// for the merged `(other)` nodes).
        public var frame: ReportFrame?
        /// Figures of every stack through this node.
        public var total = SiteFigures()
        /// Figures of the stacks that end here.
        public var own = SiteFigures()
        public var children: [Int] = []
        /// Index of the parent node; -1 for the root.
        public var parent: Int
        /// Stacks merged into this node when it is an `(other)` node.
        public var mergedNodes = 0
    }

    /// Name of the node that stands for merged small nodes.
    public static let otherName = "(other)"

    /// All nodes; index 0 is the root.
    public private(set) var nodes: [Node]
    /// Nodes that were merged into `(other)` nodes.
    public private(set) var mergedNodeCount = 0

    public var root: Node { nodes[0] }

    /// Builds the tree of `profile`'s stacks. Children of a node that are below `threshold` of the total
    /// for every metric are merged into one `(other)` child; the threshold is raised until the tree has at
    /// most `maximumNodes` nodes. O(stacks × depth).
    public init(profile: StackProfile, rootName: String = "all", threshold: Double = 0, maximumNodes: Int = .max) {
        var nodes = [Node(name: rootName, frame: nil, parent: -1)]
        var childIndex: [Int: [String: Int]] = [:]
        for stack in profile.stacks {
            var current = 0
            nodes[0].total += stack.figures
            let frames =
                stack.frames.isEmpty
                ? [ReportFrame(address: 0, module: nil, offset: nil)] : stack.frames
            for frame in frames {
                let name = stack.frames.isEmpty ? "(no stack recorded)" : Self.name(of: frame)
                let key = name + "\u{1}" + (frame.moduleName ?? "")
                if let existing = childIndex[current]?[key] {
                    current = existing
                } else {
                    nodes.append(Node(name: name, frame: stack.frames.isEmpty ? nil : frame, parent: current))
                    let index = nodes.count - 1
                    nodes[current].children.append(index)
                    childIndex[current, default: [:]][key] = index
                    current = index
                }
                nodes[current].total += stack.figures
            }
            nodes[current].own += stack.figures
        }
        self.nodes = nodes
        if threshold > 0 || nodes.count > maximumNodes {
            var fraction = max(threshold, 0)
            if nodes.count > maximumNodes {
                // A node is never more important than its parent (figures include the callees), so the
                // most important half of the budget is a tree; the rest is room for the (other) nodes.
                let importance = Self.importance(nodes).sorted(by: >)
                fraction = max(fraction, importance[min(max(maximumNodes / 2, 1), importance.count - 1)])
            }
            var pruned = Self.pruned(nodes, threshold: fraction)
            while pruned.nodes.count > maximumNodes && fraction < 1 {
                fraction = fraction == 0 ? 0.0001 : fraction * 2
                pruned = Self.pruned(nodes, threshold: fraction)
            }
            self.nodes = pruned.nodes
            mergedNodeCount = pruned.merged
        }
        for index in self.nodes.indices {
            let sorted = self.nodes[index].children.sorted { self.nodes[$0].name < self.nodes[$1].name }
            self.nodes[index].children = sorted
        }
    }

    /// The function of a frame (`module+0xoffset` without one); `;` would split a folded line, so it
    /// becomes `:`.
    static func name(of frame: ReportFrame) -> String {
        let name = frame.function ?? frame.location
        return name.contains(";") || name.contains("\n")
            ? String(name.map { $0 == ";" ? ":" : $0 == "\n" ? " " : $0 }) : name
    }

    /// Each node's largest share of the root's figure over all metrics.
    private static func importance(_ nodes: [Node]) -> [Double] {
        let totals = CallTreeMetric.allCases.map { Double($0.value(nodes[0].total)) }
        return nodes.map { node in
            zip(CallTreeMetric.allCases, totals).reduce(0) { best, pair in
                pair.1 > 0 ? max(best, Double(pair.0.value(node.total)) / pair.1) : best
            }
        }
    }

    /// A copy of `nodes` where every node small for all metrics (below `threshold` of the root's figure)
    /// is folded, with its subtree, into one `(other)` child of its parent.
    private static func pruned(_ nodes: [Node], threshold: Double) -> (nodes: [Node], merged: Int) {
        let totals = CallTreeMetric.allCases.map { Double($0.value(nodes[0].total)) }
        func isSmall(_ figures: SiteFigures) -> Bool {
            for (metric, total) in zip(CallTreeMetric.allCases, totals) where total > 0 {
                if Double(metric.value(figures)) >= total * threshold { return false }
            }
            return true
        }
        func subtreeSize(_ index: Int) -> Int { 1 + nodes[index].children.reduce(0) { $0 + subtreeSize($1) } }
        var result = [Node(name: nodes[0].name, frame: nil, total: nodes[0].total, own: nodes[0].own, parent: -1)]
        var merged = 0
        var pending = [(old: 0, new: 0)]
        while let (old, new) = pending.popLast() {
            var other: Node?
            for child in nodes[old].children {
                if isSmall(nodes[child].total) {
                    if other == nil { other = Node(name: otherName, frame: nil, parent: new) }
                    other?.total += nodes[child].total
                    other?.own += nodes[child].total
                    let size = subtreeSize(child)
                    other?.mergedNodes += size
                    merged += size
                    continue
                }
                var copy = nodes[child]
                copy.parent = new
                copy.children = []
                result.append(copy)
                result[new].children.append(result.count - 1)
                pending.append((child, result.count - 1))
            }
            if let other {
                result.append(other)
                result[new].children.append(result.count - 1)
            }
        }
        return (result, merged)
    }

    /// The path of node `index` from the outermost frame (the root excluded).
    public func path(to index: Int) -> [Int] {
        var path: [Int] = []
        var current = index
        while current > 0 {
            path.append(current)
            current = nodes[current].parent
        }
        return path.reversed()
    }

    /// Folded stacks: one `frame;frame;frame value` line per call path with a non-zero own value, outermost
    /// frame first, in path order (the input of flamegraph.pl, inferno and speedscope).
    public func folded(by metric: CallTreeMetric) -> String {
        var lines: [String] = []
        var pending: [(index: Int, prefix: String)] = nodes[0].children.reversed().map { ($0, "") }
        while let (index, prefix) = pending.popLast() {
            let node = nodes[index]
            let path = prefix.isEmpty ? node.name : prefix + ";" + node.name
            let value = metric.value(node.own)
            if value > 0 { lines.append("\(path) \(value)") }
            for child in node.children.reversed() { pending.append((child, path)) }
        }
        return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
    }
}
