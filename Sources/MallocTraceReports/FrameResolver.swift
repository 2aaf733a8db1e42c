public import MallocTraceFormat
import MallocTraceSymbolication

/// Turns raw return addresses into module-relative frames using the trace's module map, and names their
/// functions from the modules' symbol tables when the files are still there. File and line need debug
/// information (a later stage).
public struct FrameResolver {
    private struct Range {
        var start: UInt64
        var end: UInt64
        var module: Int
    }

    private let modules: [Module]
    private let ranges: [Range]
    private let symbolizer = Symbolizer()

    public init(modules: [Module]) {
        self.modules = modules
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

    public func frame(for address: UInt64) -> ReportFrame {
        guard let module = module(containing: address) else {
            return ReportFrame(address: address, module: nil, offset: nil)
        }
        var frame = ReportFrame(address: address, module: module.path, offset: address &- module.loadBias)
        frame.function = symbolizer.functionName(modulePath: module.path, offset: address &- module.loadBias)
        return frame
    }
}
