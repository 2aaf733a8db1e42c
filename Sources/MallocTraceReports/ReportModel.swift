public import MallocTraceAnalysis
public import MallocTraceFormat

/// One frame of a call stack as reports show it. `function`, `file` and `line` are filled by symbolization
/// when it is available; until then a frame reads `module+0xoffset`.
public struct ReportFrame: Sendable, Equatable {
    /// The runtime return address recorded in the trace.
    public var address: UInt64
    /// Path of the module containing the address, if known.
    public var module: String?
    /// Address relative to the module's load bias (what symbolizers take, after subtracting one).
    public var offset: UInt64?
    public var function: String?
    public var file: String?
    public var line: Int?

    public init(address: UInt64, module: String?, offset: UInt64?) {
        self.address = address
        self.module = module
        self.offset = offset
    }

    /// `module+0xoffset`, or the bare address when no module contains it.
    public var location: String {
        guard let module, let offset else { return "0x\(String(address, radix: 16))" }
        let name = module.split(separator: "/").last.map(String.init) ?? module
        return "\(name)+0x\(String(offset, radix: 16))"
    }

    /// `function (file:line)` when fully symbolized, `function (module+0xoffset)` with a name only,
    /// else the location alone.
    public var displayName: String {
        guard let function else { return location }
        if let file { return "\(function) (\(file)\(line.map { ":\($0)" } ?? ""))" }
        return "\(function) (\(location))"
    }
}

/// A group of allocations sharing a call stack, with the figure the section ranks by.
public struct ReportSite: Sendable, Equatable {
    public var bytes: UInt64
    public var blocks: UInt64
    public var allocationCalls: UInt64
    public var stackID: UInt32
    public var stack: [ReportFrame]
}

/// Everything a report prints, independent of the output format.
public struct Report: Sendable {
    public var tracePath: String
    public var process: ProcessDetails?
    public var end: EndDetails?
    public var isTruncated: Bool
    public var diagnostics: [String]
    public var summary: HeapSummary
    public var leaks: [ReportSite]
    public var peakContributors: [ReportSite]
    /// Number of distinct call stacks with leaked blocks (also those beyond `top`).
    public var leakSiteCount: Int

    /// Runs the whole pipeline for one trace file: read, analyze, resolve the frames of the top sites.
    public static func make(tracePath: String, top: Int) throws(TraceError) -> Report {
        let reader = try TraceReader(path: tracePath)
        var analyzer = HeapAnalyzer()
        reader.forEachEventBatch { analyzer.consume($0) }
        return Report(reader: reader, analysis: analyzer.result(), top: top)
    }

    public init(reader: TraceReader, analysis: HeapAnalysis, top: Int) {
        tracePath = reader.path
        process = reader.process
        end = reader.end
        isTruncated = reader.isTruncated
        diagnostics = reader.diagnostics.map(\.description)
        summary = analysis.summary
        let resolver = FrameResolver(modules: reader.modules)
        func site(_ statistics: SiteStatistics, bytes: UInt64, blocks: UInt64) -> ReportSite {
            ReportSite(
                bytes: bytes, blocks: blocks, allocationCalls: statistics.allocationCalls,
                stackID: statistics.stackID,
                stack: (reader.stacks[statistics.stackID] ?? []).map(resolver.frame(for:)))
        }
        // Ties break on the stack id so that output is stable from run to run.
        leakSiteCount = analysis.sites.count { $0.leakedBlocks > 0 }
        leaks = analysis.sites.filter { $0.leakedBlocks > 0 }
            .sorted { ($0.leakedBytes, $1.stackID) > ($1.leakedBytes, $0.stackID) }
            .prefix(top)
            .map { site($0, bytes: $0.leakedBytes, blocks: $0.leakedBlocks) }
        peakContributors = analysis.sites.filter { $0.peakBlocks > 0 }
            .sorted { ($0.peakBytes, $1.stackID) > ($1.peakBytes, $0.stackID) }
            .prefix(top)
            .map { site($0, bytes: $0.peakBytes, blocks: $0.peakBlocks) }
    }

    /// How the process ended, in words.
    public var endDescription: String {
        if let end {
            switch end.reason {
            case .normalExit: return "exited normally"
            case .underscoreExit(let status): return "called _exit(\(status))"
            case .unknown(let value): return "ended (reason \(value))"
            }
        }
        return "trace is truncated: the process was killed, crashed or exec'd before it exited"
    }

    /// Seconds the process ran, from the exit record or else the last event seen.
    public var duration: Double {
        Double(end?.time ?? summary.lastEventTime) / 1e9
    }
}
