import ArgumentParser
import MallocTraceFormat
import MallocTraceReports

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarize a trace: totals, peak, leaks and what was live at the peak.",
        discussion: """
            Frames show as module+0xoffset (symbol names come in a later version). A trace cut short by a
            crash or kill is reported up to its last complete event and marked truncated.

            Examples:
              malloctrace report app.mtrace
              malloctrace report app.mtrace --format json --top 5 | jq '.summary.leaked_bytes'
            """
    )

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Argument(help: ArgumentHelp("The trace file (.mtrace) to read.", valueName: "trace"))
    var trace: String

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    @Option(help: ArgumentHelp("How many leak sites and peak contributors to list.", valueName: "n"))
    var top: Int = 10

    func validate() throws {
        guard top >= 0 else { throw ValidationError("--top must be 0 or more, not \(top)") }
    }

    func run() throws {
        let report: Report
        do {
            report = try Report.make(tracePath: trace, top: top)
        } catch {
            throw CommandFailure(error.description)
        }
        switch format {
        case .text: print(TextRenderer.render(report), terminator: "")
        case .json: print(try JSONRenderer.render(report), terminator: "")
        }
    }
}
