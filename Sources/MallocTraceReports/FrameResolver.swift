public import MallocTraceFormat
public import MallocTraceSymbolication

/// Turns raw return addresses into report frames: the module and module-relative offset from the trace's
/// module map (unloaded modules included, so code that was `dlclose`d still resolves), then function,
/// file, line and inlined calls from a ``Symbolizer``.
public final class FrameResolver {
    private struct Range {
        var start: UInt64
        var end: UInt64
        var module: Int
    }

    private let modules: [Module]
    private let ranges: [Range]
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
        // Later modules win on overlap (a library loaded where an unloaded one used to be).
        self.ranges = ranges.enumerated().sorted { ($0.element.start, $0.offset) < ($1.element.start, $1.offset) }
            .map(\.element)
    }

    /// The module containing `address`, if any. O(log n) in the number of segments.
    public func module(containing address: UInt64) -> Module? {
        var low = 0, high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].start <= address { low = middle + 1 } else { high = middle }
        }
        var index = low - 1
        while index >= 0 {
            if address < ranges[index].end { return modules[ranges[index].module] }
            if address - ranges[index].start > 1 << 40 { break }  // no segment is that large: stop scanning
            index -= 1
        }
        return nil
    }

    private func moduleAddress(_ address: UInt64) -> ModuleAddress? {
        guard let module = module(containing: address) else { return nil }
        return ModuleAddress(module: module.path, buildID: module.buildID, offset: address &- module.loadBias)
    }

    /// Symbolizes all of `addresses` in one batch, so that later lookups are answered from the cache.
    public func prepare(_ addresses: some Sequence<UInt64>, progress: ((Int, Int) -> Void)? = nil) {
        guard let symbolizer else { return }
        symbolizer.symbolicate(addresses.compactMap(moduleAddress), progress: progress)
    }

    /// The frames one return address stands for, innermost first: each inlined call (``ReportFrame/isInlined``)
    /// and then the function containing the call. One frame with module and offset only when nothing is known.
    public func frames(for address: UInt64) -> [ReportFrame] {
        guard let module = module(containing: address) else {
            var frame = ReportFrame(address: address, module: nil, offset: nil)
            frame.problem = "no module of the trace contains the address"
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
    public func frames(forStack stack: [UInt64]) -> [ReportFrame] {
        stack.flatMap(frames(for:))
    }

    /// The innermost frame of `address` (the inlined call, if any).
    public func frame(for address: UInt64) -> ReportFrame {
        frames(for: address)[0]
    }
}
