import ArgumentParser
import Foundation
import MallocTraceAnalysis
import MallocTraceFormat
import MallocTraceReports
import MallocTraceSymbolication

/// `--top N` or `--top SECTION=N`.
struct TopLimit: ExpressibleByArgument {
    var section: ReportSection?
    var count: Int

    init?(argument: String) {
        let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
        if parts.count == 2 {
            guard let section = ReportSection(rawValue: parts[0]), section.listsSites || section == .threads,
                let count = Int(parts[1]), count >= 0
            else { return nil }
            self.section = section
            self.count = count
        } else {
            guard let count = Int(argument), count >= 0 else { return nil }
            self.count = count
        }
    }
}

/// `--group-by` values (the library's enum cannot conform to ExpressibleByArgument here).
enum GroupingArgument: String, ExpressibleByArgument, CaseIterable {
    case stack, function, file

    var grouping: StackGrouping {
        switch self {
        case .stack: .stack
        case .function: .function
        case .file: .file
        }
    }
}

/// The options `report` and `diff` share: what to cover and how to group and show it.
struct AnalysisOptions: ParsableArguments {
    @Option(
        name: .customLong("group-by"),
        help: ArgumentHelp(
            "Group allocations by call stack, by allocating function (the first frame shown) or by its source file.",
            valueName: "stack|function|file"))
    var grouping: GroupingArgument = .stack

    @OptionGroup var selection: SelectionOptions

    func apply(to options: inout ReportOptions) throws {
        try selection.apply(to: &options)
        options.grouping = grouping.grouping
    }
}

/// What every command that reads a trace's allocations shares: which allocations, which leak kinds, how
/// frames are resolved and shown (`report`, `diff`, `flamegraph`, `export`).
struct SelectionOptions: ParsableArguments {
    @Flag(help: "Show the tracer's and allocation wrappers' frames (operator new, swift_allocObject, strdup, …).")
    var keepAllocatorFrames = false

    @Option(
        help: ArgumentHelp(
            "Count a block as temporary when its thread frees it with at most N (0-65536) other allocations in"
                + " between.",
            valueName: "n"))
    var temporaryThreshold: Int = 0

    @Option(help: ArgumentHelp("Only allocations made at or after this time (seconds since start).", valueName: "s"))
    var from: Double?

    @Option(help: ArgumentHelp("Only allocations made up to this time (seconds since start).", valueName: "s"))
    var to: Double?

    @Option(
        help: ArgumentHelp(
            "Only allocations made after the first malloctrace_mark(\"NAME\") (exact, in the order of calls of all"
                + " threads).", valueName: "name"))
    var fromMark: String?

    @Option(
        help: ArgumentHelp(
            "Only allocations made before the first mark NAME (after --from-mark); blocks live then count as"
                + " leaked.", valueName: "name"))
    var toMark: String?

    @Option(
        name: .customLong("thread"),
        help: ArgumentHelp(
            "Only allocations made by this thread id (repeatable, or comma-separated).", valueName: "tid"))
    var threads: [String] = []

    @Option(
        help: ArgumentHelp(
            "Only stacks with a frame whose function, module or file matches (substring; * wildcard; ^ and $ anchor).",
            valueName: "pattern"))
    var include: [String] = []

    @Option(help: ArgumentHelp("Leave out stacks with a frame that matches (as --include).", valueName: "pattern"))
    var exclude: [String] = []

    @Option(
        help: ArgumentHelp(
            "The llvm-symbolizer to use, or 'none' for names from symbol tables only (default: $MALLOCTRACE_SYMBOLIZER, "
                + "the Swift toolchain's, PATH).", valueName: "path"))
    var symbolizer: String?

    @Option(
        help: ArgumentHelp(
            "Which blocks live at exit count as leaks, when the trace has a leak scan (check, run --leak-kinds):"
                + " comma-separated definite, indirect, possible, reachable, or all.", valueName: "kinds"))
    var leakKinds: String = "definite,indirect"

    func validate() throws {
        _ = try countedLeakKinds()
        let maximum = TemporaryAllocationCounter.maximumThreshold
        guard (0...maximum).contains(temporaryThreshold) else {
            throw ValidationError("--temporary-threshold must be 0 to \(maximum), not \(temporaryThreshold)")
        }
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, !(value.isFinite && value >= 0) {
                throw ValidationError("\(name) must be a number of seconds, 0 or more")
            }
        }
        if let from, let to, to < from { throw ValidationError("--to (\(to)) is before --from (\(from))") }
        _ = try threadIDs()
    }

    func threadIDs() throws -> [UInt32] {
        try threads.flatMap { $0.split(separator: ",") }.map { text in
            guard let id = UInt32(text.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--thread takes thread ids (numbers), not '\(text)'")
            }
            return id
        }
    }

    func countedLeakKinds() throws -> Set<LeakKind> {
        switch LeakKind.parseList(leakKinds) {
        case .success(let kinds): return kinds
        case .failure(let error): throw ValidationError("--leak-kinds: \(error)")
        }
    }

    func apply(to options: inout ReportOptions) throws {
        options.leakKinds = try countedLeakKinds()
        options.keepsAllocatorFrames = keepAllocatorFrames
        options.temporaryThreshold = temporaryThreshold
        options.filters.from = from
        options.filters.to = to
        options.filters.fromMark = fromMark
        options.filters.toMark = toMark
        options.filters.threads = try threadIDs()
        options.filters.include = include.map(StackPattern.init)
        options.filters.exclude = exclude.map(StackPattern.init)
        if let symbolizer {
            options.symbolizer = symbolizer == "none" ? .symbolTables : .llvmSymbolizer(path: symbolizer)
        }
    }
}

/// Progress on standard error, only when it is a terminal, after the first second (MALLOCTRACE_PROGRESS_DELAY
/// seconds; the tests set 0).
func makeProgressMeter() -> ProgressMeter {
    let delay = ProcessInfo.processInfo.environment["MALLOCTRACE_PROGRESS_DELAY"].flatMap(Double.init) ?? 1.0
    return ProgressMeter(enabled: isatty(2) == 1, delay: delay) { text in
        StandardError.write(text)
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarize a trace: totals, peak and what was live at it, top sites, leaks, sizes, threads.",
        discussion: """
            Frames show function, file:line and inlined calls (from llvm-symbolizer, found through \
            $MALLOCTRACE_SYMBOLIZER, the Swift toolchain or PATH; without it, names from symbol tables). \
            Allocator frames (operator new, swift_allocObject, strdup, g_malloc, ...) are folded away unless \
            --keep-allocator-frames. A trace cut short by a crash or kill is reported up to its last complete \
            event and marked truncated.

            Sections: summary, peak, allocations, bytes, temporary, leaks, histogram, threads.

            Examples:
              malloctrace report app.mtrace
              malloctrace report app.mtrace --sections summary,leaks --top 3
              malloctrace report app.mtrace --group-by function --top peak=20 --format json | jq '.peak_contributors'
              malloctrace report app.mtrace --from 2.5 --to 4 --exclude libpython
              malloctrace report app.mtrace --from-mark warmup-done --to-mark request-end
              malloctrace report app.mtrace --format html -o report.html
              malloctrace report app.mtrace --allocator --sections summary

            Programs that include malloctrace.h (docs/api.md) add marks, snapshots, pauses and pools to their \
            trace: pool blocks read as frames "[pool NAME]", marks bound reports exactly (in the order of calls, \
            unlike --from/--to, which use times), and the summary lists pauses and per-pool totals.

            The HTML page is one self-contained file (no network): summary, heap in use over time with the peak \
            marked, an interactive flame graph (peak, leaked, allocated, calls, temporary), the top tables with \
            their stacks, leak kinds and the size histogram. Large traces stay fast: at most 600 points over \
            time, and frames below 0.1% of every metric are merged.
            """
    )

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json, html
    }

    @Argument(help: ArgumentHelp("The trace file (.mtrace) to read.", valueName: "trace"))
    var trace: String

    @Option(
        help: ArgumentHelp(
            "Output format: text, json, or html (one self-contained page: summary, heap over time, flame graph, "
                + "tables).", valueName: "format"))
    var format: OutputFormat = .text

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp("Write the report to this file ('-' or none: standard output).", valueName: "file"))
    var output: String?

    @Option(
        help: ArgumentHelp(
            "Sections to show, comma-separated: summary, peak, allocations, bytes, temporary, leaks, histogram, "
                + "threads, or all.", valueName: "list"))
    var sections: String = "all"

    @Option(
        help: ArgumentHelp(
            "Entries per list section (default 10); SECTION=N sets one section's (repeatable).", valueName: "n"))
    var top: [TopLimit] = []

    @Flag(
        help: ArgumentHelp(
            "Add the allocator's view: requested against usable bytes (internal waste by size and call site), blocks"
                + " served by the heap, thread arenas or mmap, glibc's mmap threshold over time, arenas per thread, the"
                + " resident set beside the live heap with the gap between them named (free heap, allocator overhead,"
                + " the program's own mappings such as pymalloc's arenas: trace with 'run --mmap' to see those by call"
                + " stack), and requests just above a size-class or mmap boundary. Text, JSON ('allocator') and HTML."
                + " docs/how-malloc-works.md explains how to read it."))
    var allocator = false

    @OptionGroup var analysis: AnalysisOptions

    @Flag(
        help: ArgumentHelp(
            "Read every event even when the trace has a stored analysis (`run` and `compress` store one, which a"
                + " report without options reads instead of the events; any other option reads the events anyway)."))
    var noIndex = false

    func selectedSections() throws -> Set<ReportSection> {
        var selected = Set<ReportSection>()
        for name in sections.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if name == "all" {
                selected.formUnion(ReportSection.allCases)
            } else if let section = ReportSection(rawValue: name) {
                selected.insert(section)
            } else {
                throw ValidationError(
                    "unknown section '\(name)'; choose from "
                        + ReportSection.allCases.map(\.rawValue).joined(separator: ", ") + ", all")
            }
        }
        guard !selected.isEmpty else { throw ValidationError("--sections names no section") }
        return selected
    }

    func validate() throws {
        _ = try selectedSections()
    }

    func run() throws {
        var options = ReportOptions()
        options.sections = try selectedSections()
        for limit in top {
            if let section = limit.section {
                options.topBySection[section] = limit.count
            } else {
                options.top = limit.count
            }
        }
        try analysis.apply(to: &options)
        options.showsAllocator = allocator
        if format == .html {
            let model: HTMLReportModel
            do {
                model = try HTMLReportModel.make(tracePath: trace, options: options, progress: makeProgressMeter())
            } catch {
                throw CommandFailure(error.description)
            }
            try CommandOutput.write(try HTMLRenderer.render(model), to: output)
            return
        }
        let report: Report
        do {
            report = try Report.make(
                tracePath: trace, options: options, progress: makeProgressMeter(),
                storedAnalysisWriter: noIndex ? nil : MallocTrace.configuration.version)
        } catch {
            throw CommandFailure(error.description)
        }
        switch format {
        case .text: try CommandOutput.write(TextRenderer.render(report), to: output)
        case .json: try CommandOutput.write(try JSONRenderer.render(report), to: output)
        case .html: break
        }
    }
}
