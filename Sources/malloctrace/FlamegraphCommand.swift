public import ArgumentParser
import MallocTraceFormat
public import MallocTraceReports

/// `--metric` values.
extension CallTreeMetric: ExpressibleByArgument {}

struct FlamegraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flamegraph",
        abstract: "Draw a trace's allocations as an interactive flame graph (SVG), or write folded stacks.",
        discussion: """
            The SVG is standalone (no network, no third-party code); open it in a web browser to zoom and \
            search (any SVG viewer shows it). Each box is a \
            function; its width is the chosen figure of every allocation made through it; the outermost frame \
            is at the bottom. Click a box to zoom into it, "Reset zoom" (or Escape) to go back, "Search" (or \
            Ctrl-F) to highlight frames matching a regular expression; hovering shows bytes, blocks and percent.

            Metrics: peak (bytes live at the moment of the peak), leaked (bytes never freed), allocated (bytes \
            allocated over the run), calls (allocation calls), temporary (temporary allocations). For a sampled \
            trace, bytes are estimates and calls are samples.

            To stay fast on large traces, frames below --min-percent of the total (for every metric) are merged \
            into one "(other)" box per parent, and at most --max-nodes boxes are kept. --folded writes every call \
            path instead (`frame;frame;frame value`, outermost first), the input of flamegraph.pl, inferno and \
            speedscope; it merges nothing.

            Examples:
              malloctrace flamegraph app.mtrace -o peak.svg
              malloctrace flamegraph app.mtrace --metric leaked -o leaks.svg
              malloctrace flamegraph app.mtrace --metric allocated --folded > allocated.folded
              malloctrace flamegraph app.mtrace --folded | inferno-flamegraph > out.svg
            """
    )

    @Argument(help: ArgumentHelp("The trace file (.mtrace) to read.", valueName: "trace"))
    var trace: String

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp("Write to this file ('-' or none: standard output).", valueName: "file"))
    var output: String?

    @Option(
        help: ArgumentHelp("What box widths show: peak, leaked, allocated, calls or temporary.", valueName: "metric"))
    var metric: CallTreeMetric = .peak

    @Flag(help: "Write folded stacks (`frame;frame;frame value` per line, outermost first) instead of an SVG.")
    var folded = false

    @Option(
        help: ArgumentHelp(
            "Merge frames below this percentage of the total into (other) (SVG only).", valueName: "percent"))
    var minPercent: Double = 0.1

    @Option(help: ArgumentHelp("Keep at most this many boxes (SVG only).", valueName: "n"))
    var maxNodes: Int = 20000

    @Option(help: ArgumentHelp("The title of the SVG (default: the traced command).", valueName: "text"))
    var title: String?

    @OptionGroup var selection: SelectionOptions

    func validate() throws {
        guard minPercent.isFinite, minPercent >= 0, minPercent <= 100 else {
            throw ValidationError("--min-percent must be between 0 and 100, not \(minPercent)")
        }
        guard maxNodes >= 2 else { throw ValidationError("--max-nodes must be 2 or more, not \(maxNodes)") }
    }

    func run() throws {
        var options = ReportOptions()
        try selection.apply(to: &options)
        let profile: StackProfile
        do {
            profile = try StackProfile.make(tracePath: trace, options: options, progress: makeProgressMeter())
        } catch {
            throw CommandFailure(error.description)
        }
        if folded {
            try CommandOutput.write(CallTree(profile: profile).folded(by: metric), to: output)
            return
        }
        let tree = CallTree(profile: profile, threshold: minPercent / 100, maximumNodes: maxNodes)
        let heading = title ?? "malloctrace: " + Self.commandLine(profile.process, trace: trace)
        try CommandOutput.write(try FlameGraphRenderer.svg(tree, metric: metric, title: heading), to: output)
    }

    /// The traced command (`./app --flag`), or the trace's file name.
    static func commandLine(_ process: ProcessDetails?, trace: String) -> String {
        guard let process, !process.arguments.isEmpty else {
            return trace.split(separator: "/").last.map(String.init) ?? trace
        }
        return process.arguments.joined(separator: " ")
    }
}
