public import ArgumentParser
import Foundation
import MallocTraceFormat
public import MallocTraceReports

extension PprofExporter.InUse: ExpressibleByArgument {}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Convert traces for other tools: pprof, speedscope or heaptrack.",
        discussion: """
            Formats:
              pprof       gzip-compressed profile.proto for `pprof` / `go tool pprof`: sample types \
            alloc_objects, alloc_space, inuse_objects and inuse_space (in use at the peak, or at exit with \
            --at exit); mappings with build IDs, functions with file names, inlined calls as lines of one \
            location; a sampled trace carries its rate as the period.
              speedscope  speedscope's JSON file format (https://www.speedscope.app): one profile per metric \
            (peak, leaked, allocated, calls, temporary).
              heaptrack   heaptrack's own text format (version 3), for heaptrack_print and heaptrack_gui; \
            gzip-compressed when the file name ends in .gz.

            Several traces (from `run --follow-children`) give one file per process in the directory named by \
            -o (which must end with '/' or exist), named after each trace; with --merge, one profile of all \
            of them (pprof and speedscope).

            Examples:
              malloctrace export app.mtrace --format pprof -o app.pb.gz && pprof -top -sample_index=inuse_space app.pb.gz
              malloctrace export app.mtrace --format pprof --at exit -o leaks.pb.gz
              malloctrace export app.mtrace --format speedscope -o app.speedscope.json
              malloctrace export app.mtrace --format heaptrack -o heaptrack.app.txt && heaptrack_print heaptrack.app.txt
              malloctrace export traces/*.mtrace --format pprof -o profiles/
              malloctrace export traces/*.mtrace --format pprof --merge -o all.pb.gz
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case pprof, speedscope, heaptrack

        var fileExtension: String {
            switch self {
            case .pprof: "pb.gz"
            case .speedscope: "speedscope.json"
            case .heaptrack: "heaptrack"
            }
        }
    }

    @Argument(help: ArgumentHelp("The trace files (.mtrace) to read.", valueName: "trace"))
    var traces: [String]

    @Option(help: ArgumentHelp("pprof, speedscope or heaptrack.", valueName: "format"))
    var format: Format

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp(
            "The output file ('-' or none: standard output); a directory for several traces.", valueName: "path"))
    var output: String?

    @Option(
        help: ArgumentHelp(
            "What pprof's inuse_* sample types show: live at the peak, or at exit.", valueName: "peak|exit"))
    var at: PprofExporter.InUse = .peak

    @Flag(help: "With several traces, write one merged profile (pprof, speedscope).")
    var merge = false

    @OptionGroup var selection: SelectionOptions

    func validate() throws {
        guard !traces.isEmpty else { throw ValidationError("name at least one trace file") }
        if merge && format == .heaptrack {
            throw ValidationError("--merge works with pprof and speedscope; heaptrack files hold one process each")
        }
        if traces.count > 1 && !merge {
            guard let output, output != "-" else {
                throw ValidationError("several traces need -o DIRECTORY/ (one file each) or --merge")
            }
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory)
            guard output.hasSuffix("/") || (exists && isDirectory.boolValue) else {
                throw ValidationError("several traces need -o to name a directory (end it with '/'), or --merge")
            }
        }
        if at == .exit && format != .pprof { throw ValidationError("--at applies to --format pprof only") }
    }

    func run() throws {
        var options = ReportOptions()
        try selection.apply(to: &options)
        if traces.count > 1 && !merge, let output {
            do {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            } catch {
                throw CommandFailure("cannot create \(output): \(error.localizedDescription)")
            }
            for trace in traces {
                var name = URL(fileURLWithPath: trace).lastPathComponent
                if name.hasSuffix(".mtrace") { name.removeLast(".mtrace".count) }
                let path = URL(fileURLWithPath: output).appendingPathComponent(name + "." + format.fileExtension).path
                try CommandOutput.write(try export([trace], options: options), to: path)
            }
            return
        }
        try CommandOutput.write(try export(traces, options: options), to: output)
    }

    /// The exported file of `traces` (several only when merging).
    private func export(_ traces: [String], options: ReportOptions) throws -> [UInt8] {
        let heaptrack = format == .heaptrack ? HeaptrackExporter() : nil
        var profiles: [StackProfile] = []
        for trace in traces {
            do {
                profiles.append(
                    try StackProfile.make(
                        tracePath: trace, options: options, progress: makeProgressMeter(),
                        observer: heaptrack.map { exporter in { exporter.consume($0) } }))
            } catch {
                throw CommandFailure(error.description)
            }
        }
        let profile = profiles.count == 1 ? profiles[0] : StackProfile(merging: profiles)
        let name =
            traces.count == 1
            ? FlamegraphCommand.commandLine(profile.process, trace: traces[0]) : "\(traces.count) processes"
        switch format {
        case .pprof:
            do {
                return try PprofExporter.compressedProfile(profile, inUse: at, comment: "malloctrace: " + name)
            } catch {
                throw CommandFailure(error.description)
            }
        case .speedscope:
            return Array(
                try SpeedscopeExporter.render(
                    profile, name: name, exporter: "malloctrace \(MallocTrace.configuration.version)"
                )
                .utf8)
        case .heaptrack:
            let text = heaptrack?.render(profile: profile) ?? []
            // heaptrack_print picks its decompressor by the file name.
            guard output?.hasSuffix(".gz") == true else { return text }
            do {
                return try Gzip.compress(text)
            } catch {
                throw CommandFailure(error.description)
            }
        }
    }
}
