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
}
