import ArgumentParser
import Foundation
import MallocTraceFormat
import MallocTraceReports

/// `--sort` values.
enum DiffOrderArgument: String, ExpressibleByArgument, CaseIterable {
    case largest, peak, leaked, allocations, bytes

    var order: DiffOrder {
        switch self {
        case .largest: .largest
        case .peak: .peak
        case .leaked: .leaked
        case .allocations: .allocations
        case .bytes: .bytes
        }
    }
}

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two traces: what changed in peak, leaks, allocation calls and bytes, per stack or function.",
        discussion: """
            Sites are matched by their symbolized frames (function and module of every frame, allocator frames \
            folded), not by addresses or stack ids, so two runs of a program match even when it was rebuilt or \
            loaded elsewhere. Entries are sorted by the largest change. Filters apply to both traces.

            TRACE@NAME stands for the live set at the first malloctrace_snapshot("NAME") of TRACE (what was \
            allocated up to then and not released): "leaked" compares the two live sets. Both sides may be one \
            trace. A file whose own name contains '@' is read whole when it exists; otherwise the name is what \
            follows the last '@' (so name@1.mtrace@snap works, and name@1.mtrace@ reads that file whole).

            Examples:
              malloctrace diff before.mtrace after.mtrace
              malloctrace diff server.mtrace@request-start server.mtrace@request-end --sort leaked
              malloctrace diff before.mtrace after.mtrace --group-by function --sort leaked --format json
            """
    )

    @Argument(help: ArgumentHelp("The older trace, or TRACE@SNAPSHOT.", valueName: "before"))
    var before: String

    @Argument(help: ArgumentHelp("The newer trace, or TRACE@SNAPSHOT.", valueName: "after"))
    var after: String

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    @Option(help: ArgumentHelp("How many changed sites to list.", valueName: "n"))
    var top: Int = 10

    @Option(
        help: ArgumentHelp(
            "Order: the largest change of peak, leaked or allocated bytes, or one figure's change.",
            valueName: "largest|peak|leaked|allocations|bytes"))
    var sort: DiffOrderArgument = .largest

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        guard top >= 0 else { throw ValidationError("--top must be 0 or more, not \(top)") }
    }

    func run() throws {
        var options = ReportOptions()
        options.top = top
        try analysis.apply(to: &options)
        let diff: TraceDiff
        do {
            diff = try TraceDiff.make(
                before: before, after: after, options: options, order: sort.order, progress: makeProgressMeter())
        } catch {
            throw CommandFailure(error.description)
        }
        switch format {
        case .text: try StandardOutput.write(DiffRenderer.text(diff))
        case .json: try StandardOutput.write(try DiffRenderer.json(diff))
        }
    }
}
