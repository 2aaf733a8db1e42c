/// Everything learned from side events while merging.
struct Catalog {
    var stacks: [UInt32: [UInt64]]
    var modules: [Module]
    var diagnostics: [TraceDiagnostic]
    var moduleIndex: [UInt32: Int] = [:]
    /// Counts MODULE and MODULE_UNLOAD records: the module map in force at generation g is the modules with
    /// ``Module/isLoaded(at:)``. A stack's addresses belong to the modules of its definition's generation:
    /// a library loaded where an unloaded one used to be reuses its addresses, not its stacks.
    var generation = 0
    var stackGenerations: [UInt32: Int] = [:]
    /// Told of each stack definition as it is absorbed (for filters that look at frames during the pass):
    /// id, frames, the modules known at that point and the current generation.
    var onStack: ((UInt32, [UInt64], [Module], Int) -> Void)?
    /// Present when the trace is sampled: scales each batch's allocations as it is filled.
    var sampling: SampleEstimator?
    /// RSS samples, in the order their chunks were decoded (not necessarily in time order across threads).
    var residentSamples: [ResidentSample] = []
    /// How allocations without a CHUNK_INFO event get their usable size (from the ALLOCATOR record).
    var usableRule = UsableSizeRule.unknown
    /// The program's own mappings and mallopt calls, in decoding order.
    var mappings: [MappingEvent] = []
    var malloptCalls: [MalloptCall] = []
    /// Set at the first control API event (malloctrace.h): from then on the merger runs its ``ControlLedger``.
    var hasControlEvents = false
    /// Names of marks, snapshots and pools, each once; events refer to them by index.
    var controlNames: [String] = []
    private var controlNameIndex: [String: Int] = [:]
    /// Marks, snapshots, pauses and resumes, in sequence order.
    var marks: [TraceMark] = []
    var pools: [UInt32: TracePool] = [:]
    /// The reader's stack ids for pool blocks: the pool and the stack recorded for the block.
    var poolStacks: [UInt32: (pool: UInt32, stack: UInt32)] = [:]

    init(stacks: [UInt32: [UInt64]], modules: [Module], diagnostics: [TraceDiagnostic]) {
        self.stacks = stacks
        self.modules = modules
        self.diagnostics = diagnostics
        for (index, module) in modules.enumerated() { moduleIndex[module.id] = index }
    }

    mutating func add(_ module: Module) {
        if let index = moduleIndex[module.id], modules[index].hasSameMapping(as: module) { return }
        generation += 1
        var module = module
        module.loadedAt = generation
        moduleIndex[module.id] = modules.count
        modules.append(module)
    }

    mutating func unload(_ id: UInt32) {
        guard let index = moduleIndex[id], !modules[index].isUnloaded else { return }
        generation += 1
        modules[index].isUnloaded = true
        modules[index].unloadedAt = generation
    }

    mutating func define(_ id: UInt32, frames: [UInt64]) {
        stacks[id] = frames
        stackGenerations[id] = generation
        onStack?(id, frames, modules, generation)
    }

    mutating func internName(_ name: String) -> Int {
        if let index = controlNameIndex[name] { return index }
        controlNameIndex[name] = controlNames.count
        controlNames.append(name)
        return controlNames.count - 1
    }

    func name(at index: UInt64) -> String { index < controlNames.count ? controlNames[Int(index)] : "" }

    /// Keeps what a delivered control event tells about the process (in sequence order).
    mutating func noteControl(_ event: AllocatorEvent) {
        let kind: TraceMark.Kind
        switch event.function {
        case .poolCreate:
            pools[event.poolID] = TracePool(id: event.poolID, name: name(at: event.size), stackID: event.stackID)
            return
        case .poolBacking:
            pools[event.poolID]?.backingBlocks.append(event.address)
            return
        case .mark: kind = .mark
        case .snapshot: kind = .snapshot
        case .pause: kind = event.size != 0 ? .pause : .resume
        default: return
        }
        let text = kind == .mark || kind == .snapshot ? name(at: event.size) : ""
        marks.append(
            TraceMark(kind: kind, name: text, sequence: event.sequence, time: event.time, threadID: event.threadID))
    }

    /// Defines the reader's stacks of pool blocks (the pool's frame, then the recorded stack) and a stand-in
    /// module per pool that names it. At the end of a pass: stacks may be defined after their first use.
    mutating func finishPools() {
        for (id, origin) in poolStacks {
            stacks[id] = [PoolBlocks.frameAddress(pool: origin.pool)] + (stacks[origin.stack] ?? [])
            stackGenerations[id] = stackGenerations[origin.stack] ?? 0
        }
        let used = Set(poolStacks.values.map(\.pool)).union(pools.keys)
        for pool in used.sorted() {
            var module = Module(
                id: UInt32.max - pool, path: "", loadBias: PoolBlocks.frameAddress(pool: pool),
                segments: [Module.Segment(start: PoolBlocks.frameAddress(pool: pool), size: 1)], buildID: [])
            module.poolName = pools[pool]?.name ?? "pool \(pool)"
            module.path = "[pool " + (module.poolName ?? "") + "]"
            modules.append(module)
        }
    }
}
