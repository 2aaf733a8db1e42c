public import MallocTraceFormat
public import MallocTraceSymbolication

/// The frames reports show for each stack id: resolved, inlined calls expanded, allocator frames folded
/// (unless kept). Symbolization is batched and limited to what is needed: the first shown frame of the
/// stacks being grouped, all frames of the stacks being printed. Each stack is resolved against the modules
/// loaded when it was defined (`generations`, from ``TraceReader/stackGenerations``).
public final class StackPresenter {
    public let resolver: FrameResolver
    public let stacks: [UInt32: [UInt64]]
    public let generations: [UInt32: Int]
    public let keepsAllocatorFrames: Bool
    private var shown: [UInt32: [ReportFrame]] = [:]
    private var first: [UInt32: ReportFrame?] = [:]

    public init(
        resolver: FrameResolver, stacks: [UInt32: [UInt64]], generations: [UInt32: Int] = [:],
        keepsAllocatorFrames: Bool
    ) {
        self.resolver = resolver
        self.stacks = stacks
        self.generations = generations
        self.keepsAllocatorFrames = keepsAllocatorFrames
    }

    /// A presenter for the stacks and modules of `reader` (after a pass over its events).
    public convenience init(reader: TraceReader, symbolizer: Symbolizer?, keepsAllocatorFrames: Bool) {
        self.init(
            resolver: FrameResolver(modules: reader.modules, symbolizer: symbolizer), stacks: reader.stacks,
            generations: reader.stackGenerations, keepsAllocatorFrames: keepsAllocatorFrames)
    }

    /// The module generation stack `id` is resolved at (the end of the trace for an unknown one).
    public func generation(_ id: UInt32) -> Int { generations[id] ?? .max }

    /// Every frame of stack `id`, inlined calls expanded, nothing folded.
    public func allFrames(_ id: UInt32) -> [ReportFrame] {
        resolver.frames(forStack: stacks[id] ?? [], at: generation(id))
    }

    /// Resolves, for each stack, just enough leading addresses to know its first shown frame: one batch per
    /// depth, and only the stacks whose frames so far were all allocator frames go one deeper.
    public func prepareFirstFrames(_ ids: some Sequence<UInt32>, progress: ProgressMeter = .silent) {
        var pending: [(id: UInt32, addresses: [UInt64])] = ids.compactMap { id in
            guard first[id] == nil else { return nil }
            guard let addresses = stacks[id], !addresses.isEmpty else {
                first[id] = .some(nil)
                return nil
            }
            return (id, addresses)
        }
        var depth = 0
        while !pending.isEmpty {
            resolver.prepare(located: pending.map { ($0.addresses[depth], generation($0.id)) }) { done, total in
                progress.update("symbolizing", done: UInt64(done), total: UInt64(total), unit: "addresses")
            }
            var deeper: [(id: UInt32, addresses: [UInt64])] = []
            for (id, addresses) in pending {
                let frames = resolver.frames(for: addresses[depth], at: generation(id))
                if keepsAllocatorFrames {
                    first[id] = frames.first
                } else if let userFrame = frames.first(where: { !AllocatorFrames.isAllocatorFrame($0) }) {
                    first[id] = userFrame
                } else if depth + 1 < addresses.count {
                    deeper.append((id, addresses))
                } else {
                    // All allocator frames: nothing folds.
                    first[id] = resolver.frames(for: addresses[0], at: generation(id)).first
                }
            }
            pending = deeper
            depth += 1
        }
    }

    /// Resolves every address of the given stacks in one batch.
    public func prepareFrames(_ ids: some Sequence<UInt32>, progress: ProgressMeter = .silent) {
        var addresses = Set<LocatedAddress>()
        for id in ids where shown[id] == nil {
            let generation = generation(id)
            for address in stacks[id] ?? [] {
                addresses.insert(LocatedAddress(address: address, generation: generation))
            }
        }
        progress.update("symbolizing", done: 0, total: UInt64(addresses.count), unit: "addresses")
        resolver.prepare(located: addresses.lazy.map { ($0.address, $0.generation) }) { done, total in
            progress.update("symbolizing", done: UInt64(done), total: UInt64(total), unit: "addresses")
        }
    }

    /// Takes `frames` as the shown frames of their stacks, resolved earlier with the same inputs (a stored
    /// analysis): they are neither resolved nor folded again.
    public func reuse(_ frames: [UInt32: [ReportFrame]]) {
        shown.merge(frames) { _, stored in stored }
    }

    /// The frames shown for stack `id`, innermost first. Empty when the stack is unknown or was not recorded.
    public func frames(_ id: UInt32) -> [ReportFrame] {
        if let cached = shown[id] { return cached }
        let all = allFrames(id)
        let result = keepsAllocatorFrames ? all : AllocatorFrames.fold(all)
        shown[id] = result
        return result
    }

    /// The first frame shown for stack `id` (see ``prepareFirstFrames(_:progress:)``).
    public func firstFrame(_ id: UInt32) -> ReportFrame? {
        if let cached = first[id] { return cached }
        prepareFirstFrames([id])
        return first[id] ?? nil
    }
}

private struct LocatedAddress: Hashable {
    var address: UInt64
    var generation: Int
}
