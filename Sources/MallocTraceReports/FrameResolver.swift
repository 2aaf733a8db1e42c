public import MallocTraceFormat
public import MallocTraceSymbolication

/// Turns raw return addresses into report frames: the module and module-relative offset from the trace's
/// module map (unloaded modules included, so code that was `dlclose`d still resolves), then function,
/// file, line and inlined calls from a ``Symbolizer``.
///
/// An address is resolved against the modules loaded at a module generation (``Module/isLoaded(at:)``):
/// a stack's own (``TraceReader/stackGenerations``), so that a library loaded where an unloaded one used to
/// be does not take over the old one's frames, or its own. `Int.max` (the default) stands for the end of
/// the trace: modules never unloaded first.
public final class FrameResolver {
    private struct Range {
        var start: UInt64
        var end: UInt64
        var module: Int
    }

    private let modules: [Module]
    private let ranges: [Range]
    /// For each index of `ranges`, the largest end among it and the ranges before it: a backward scan for
    /// the ranges containing an address stops where this falls to the address.
    private let reach: [UInt64]
    /// nil: frames carry module and offset only.
    public let symbolizer: Symbolizer?

    public init(modules: [Module], symbolizer: Symbolizer? = Symbolizer()) {
        self.modules = modules
        self.symbolizer = symbolizer
        var ranges: [Range] = []
        for (index, module) in modules.enumerated() {
            for segment in module.segments where segment.size > 0 {
                let (end, overflow) = segment.start.addingReportingOverflow(segment.size)
                ranges.append(Range(start: segment.start, end: overflow ? UInt64.max : end, module: index))
            }
        }
        self.ranges = ranges.enumerated().sorted { ($0.element.start, $0.offset) < ($1.element.start, $1.offset) }
            .map(\.element)
        var reach: [UInt64] = []
        reach.reserveCapacity(self.ranges.count)
        for range in self.ranges { reach.append(max(reach.last ?? 0, range.end)) }
        self.reach = reach
    }

    /// The index in `modules` of the module containing `address` at `generation`: one loaded then (the last
    /// reported if several claim the address), else the first one reported after it (a MODULE record
    /// written just after the stack that needed it), else the last one reported. O(log n) in the number of
    /// segments, plus the segments that contain the address.
    private func moduleIndex(containing address: UInt64, at generation: Int) -> Int? {
        var low = 0, high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].start <= address { low = middle + 1 } else { high = middle }
        }
        var loaded: Int?, later: Int?, last: Int?
        var index = low - 1
        while index >= 0 && address < reach[index] {
            let range = ranges[index]
            index -= 1
            guard address < range.end else { continue }
            let module = modules[range.module]
            if module.isLoaded(at: generation) {
                loaded = max(loaded ?? range.module, range.module)
            } else if module.loadedAt > generation {
                later = min(later ?? range.module, range.module)
            }
            last = max(last ?? range.module, range.module)
        }
        return loaded ?? later ?? last
    }

    /// The module containing `address` at module generation `generation`, if any.
    public func module(containing address: UInt64, at generation: Int = .max) -> Module? {
        moduleIndex(containing: address, at: generation).map { modules[$0] }
    }

    private func moduleAddress(_ address: UInt64, at generation: Int) -> ModuleAddress? {
        guard let module = module(containing: address, at: generation), module.poolName == nil else { return nil }
        return ModuleAddress(module: module.path, buildID: module.buildID, offset: address &- module.loadBias)
    }

    /// Symbolizes all of `addresses` in one batch, so that later lookups are answered from the cache.
    public func prepare(
        _ addresses: some Sequence<UInt64>, at generation: Int = .max, progress: ((Int, Int) -> Void)? = nil
    ) {
        prepare(located: addresses.lazy.map { ($0, generation) }, progress: progress)
    }

    /// Symbolizes in one batch addresses each resolved at its own module generation.
    public func prepare(
        located addresses: some Sequence<(address: UInt64, generation: Int)>, progress: ((Int, Int) -> Void)? = nil
    ) {
        guard let symbolizer else { return }
        symbolizer.symbolicate(
            addresses.compactMap { moduleAddress($0.address, at: $0.generation) }, progress: progress)
    }

    /// The frames one return address stands for, innermost first: each inlined call (``ReportFrame/isInlined``)
    /// and then the function containing the call. One frame with module and offset only when nothing is known.
    public func frames(for address: UInt64, at generation: Int = .max) -> [ReportFrame] {
        guard let module = module(containing: address, at: generation) else {
            var frame = ReportFrame(address: address, module: nil, offset: nil)
            frame.problem = "no module of the trace contains the address"
            return [frame]
        }
        if let pool = module.poolName {
            var frame = ReportFrame(address: address, module: nil, offset: nil)
            frame.function = "[pool \(pool)]"
            frame.isPoolFrame = true
            return [frame]
        }
        let offset = address &- module.loadBias
        var base = ReportFrame(address: address, module: module.path, offset: offset)
        guard let symbolizer else { return [base] }
        let found = symbolizer.symbolicate(ModuleAddress(module: module.path, buildID: module.buildID, offset: offset))
        base.problem = found.problem
        guard !found.frames.isEmpty else { return [base] }
        return found.frames.map { source in
            var frame = base
            frame.function = source.function
            frame.file = source.file
            frame.line = source.line
            frame.isInlined = source.isInlined
            return frame
        }
    }

    /// Every frame of a stack (innermost first), inlined calls expanded.
    public func frames(forStack stack: [UInt64], at generation: Int = .max) -> [ReportFrame] {
        stack.flatMap { frames(for: $0, at: generation) }
    }

    /// The innermost frame of `address` (the inlined call, if any).
    public func frame(for address: UInt64, at generation: Int = .max) -> ReportFrame {
        frames(for: address, at: generation)[0]
    }
}
