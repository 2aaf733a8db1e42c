/// Everything learned from side events while merging.
struct Catalog {
    var stacks: [UInt32: [UInt64]]
    var modules: [Module]
    var diagnostics: [TraceDiagnostic]
    var moduleIndex: [UInt32: Int] = [:]
    /// Told of each stack definition as it is absorbed (for filters that look at frames during the pass).
    var onStack: ((UInt32, [UInt64], [Module]) -> Void)?
    /// Present when the trace is sampled: scales each batch's allocations as it is filled.
    var sampling: SampleEstimator?

    init(stacks: [UInt32: [UInt64]], modules: [Module], diagnostics: [TraceDiagnostic]) {
        self.stacks = stacks
        self.modules = modules
        self.diagnostics = diagnostics
        for (index, module) in modules.enumerated() { moduleIndex[module.id] = index }
    }

    mutating func add(_ module: Module) {
        if let index = moduleIndex[module.id], modules[index] == module { return }
        moduleIndex[module.id] = modules.count
        modules.append(module)
    }

    mutating func unload(_ id: UInt32) {
        if let index = moduleIndex[id] { modules[index].isUnloaded = true }
    }
}
