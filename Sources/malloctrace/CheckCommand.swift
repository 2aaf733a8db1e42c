import ArgumentParser
import Foundation
import MallocTraceCheck
import MallocTraceFormat
import MallocTraceReports
import MallocTraceSymbolication

/// `malloctrace check`: trace a command (or read traces) and judge leaks and limits, with an exit status a
/// CI job can gate on.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run a program (or read traces) and fail when it leaks or goes over a memory limit: a CI gate.",
        discussion: """
            With a command after --, the program runs traced with leak scanning on: when each process exits, \
            the tracer scans its memory for pointers (globals, stacks, registers, TLS), as LeakSanitizer does, \
            so that blocks still reachable at exit are not leaks. Processes it starts are followed (each is \
            judged on its own) unless --no-follow-children. With trace files instead, those are judged (a \
            trace recorded without leak scanning counts every block never freed as a definite leak).

            Findings are printed like LeakSanitizer's ("Direct leak of N byte(s) in M object(s) allocated \
            from:") on stderr when a command ran (its own output stays untouched), on stdout when traces were \
            read. Leak kinds: definite (no pointer to the block), indirect (pointed to only by leaked blocks), \
            possible (only pointers into its interior), reachable (still pointed to at exit).

            Exit status: 0 when clean; --error-exitcode (23) on findings or a limit exceeded; the command's own \
            status when it failed (128 + N for signal N), whatever the findings; 64 for a usage error; 66 when \
            a trace cannot be read, or the command (or a program one of its processes exec'd) wrote none.

            Examples:
              malloctrace check -- ./unit_tests
              malloctrace check --suppressions known.supp --junit leaks.xml -- ./server --selftest
              malloctrace check --max-peak 64MiB --max-leaked 0 -- python3 script.py
              malloctrace check --process '*Tests.xctest' -- swift test --skip-build
              malloctrace check old.mtrace
            """
    )

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(
        help: ArgumentHelp(
            "Which leak kinds are findings: comma-separated definite, indirect, possible, reachable, or all.",
            valueName: "kinds"))
    var leakKinds: String = "definite,indirect"

    @Option(help: ArgumentHelp("Exit status when there are findings (as LeakSanitizer's).", valueName: "n"))
    var errorExitcode: Int32 = 23

    @Option(
        help: ArgumentHelp(
            "A suppressions file: LeakSanitizer `leak:PATTERN` lines or valgrind memcheck `{ ... }` blocks"
                + " (repeatable).", valueName: "file"))
    var suppressions: [String] = []

    @Flag(help: "Do not apply the built-in suppressions for memory that runtimes keep on purpose.")
    var noDefaultSuppressions = false

    @Flag(help: "Print a ready-to-paste suppression for each finding (valgrind memcheck syntax and a leak: line).")
    var genSuppressions = false

    @Option(help: ArgumentHelp("Fail when a process leaks more than this (e.g. 0, 512K, 64MiB).", valueName: "size"))
    var maxLeaked: String?

    @Option(help: ArgumentHelp("Fail when a process's heap peak is above this (e.g. 64MiB).", valueName: "size"))
    var maxPeak: String?

    @Option(help: ArgumentHelp("Fail when a process makes more allocation calls (e.g. 1M).", valueName: "n"))
    var maxAllocations: String?

    @Option(
        help: ArgumentHelp("Write this run's figures as a baseline for later --baseline checks.", valueName: "file"))
    var saveBaseline: String?

    @Option(help: ArgumentHelp("Compare with a baseline written by --save-baseline.", valueName: "file"))
    var baseline: String?

    @Option(
        help: ArgumentHelp(
            "With --baseline: fail when peak, leaked bytes or allocation calls grew by more than this percentage.",
            valueName: "pct"))
    var failOnIncrease: Double?

    @Option(help: ArgumentHelp("Also write a JUnit XML report (one testcase per process).", valueName: "file"))
    var junit: String?

    @Flag(help: "Also print GitHub Actions annotations, and a table to $GITHUB_STEP_SUMMARY when it is set.")
    var github = false

    @Option(help: ArgumentHelp("Also write a SARIF 2.1.0 report (code scanning).", valueName: "file"))
    var sarif: String?

    @Option(help: "Output format of the findings: text (LeakSanitizer style) or json.")
    var format: OutputFormat = .text

    @Flag(help: "Trace only the command's own process, not the processes it starts.")
    var noFollowChildren = false

    @Option(
        name: .customLong("process"),
        help: ArgumentHelp(
            "Judge only processes whose executable name matches (* and ? wildcards; repeatable). Default: every"
                + " process; for `swift test`, its test runner (*.xctest).", valueName: "pattern"))
    var processPatterns: [String] = []

    @Option(
        help: ArgumentHelp(
            "Keep the traces in this directory (default: a temporary one, removed when the check passes).",
            valueName: "dir"))
    var traceDir: String?

    @Option(help: ArgumentHelp("Call stack frames to record per allocation (0-256).", valueName: "frames"))
    var depth: Int = 64

    @Option(
        help: ArgumentHelp(
            "The llvm-symbolizer to use, or 'none' for names from symbol tables only.", valueName: "path"))
    var symbolizer: String?

    @Argument(
        help: ArgumentHelp(
            "Trace files to judge, or -- and the program to run with its arguments.", valueName: "trace|-- command"))
    var operands: [String] = []

    /// The program and its arguments (what followed `--`), or empty when trace files were given.
    var command: [String] = []
    /// The trace files to judge, when no command was given.
    var traces: [String] = []

    /// Splits the operands at `--`: the parser hands over what follows it as plain operands, so the split
    /// is read from the command line itself (the first `--` after `check` ends the options).
    mutating func splitOperands(commandLine: [String] = CommandLine.arguments) {
        guard let check = commandLine.firstIndex(of: "check"),
            let terminator = commandLine[check...].firstIndex(of: "--")
        else {
            traces = operands
            return
        }
        let commandCount = commandLine.count - terminator - 1
        command = Array(operands.suffix(commandCount))
        traces = Array(operands.dropLast(commandCount))
    }

    mutating func validate() throws {
        splitOperands()
        if command.isEmpty == traces.isEmpty {
            throw ValidationError(
                command.isEmpty
                    ? "name a command after -- or trace files: malloctrace check -- PROGRAM [ARGS...]"
                    : "give either a command after -- or trace files, not both")
        }
        guard (0...256).contains(depth) else { throw ValidationError("--depth must be from 0 to 256, not \(depth)") }
        guard (1...255).contains(errorExitcode) else {
            throw ValidationError("--error-exitcode must be from 1 to 255, not \(errorExitcode)")
        }
        _ = try countedKinds()
        if genSuppressions && format == .json {
            throw ValidationError(
                "--gen-suppressions prints suppression files, not JSON: give one of it and --format json")
        }
        if failOnIncrease != nil && baseline == nil {
            throw ValidationError("--fail-on-increase needs --baseline FILE")
        }
        if let failOnIncrease, !(failOnIncrease.isFinite && failOnIncrease >= 0) {
            throw ValidationError("--fail-on-increase must be a percentage, 0 or more")
        }
        _ = try CheckPolicy(self)
    }

    func countedKinds() throws -> Set<LeakKind> {
        switch LeakKind.parseList(leakKinds) {
        case .success(let kinds): return kinds
        case .failure(let error): throw ValidationError("--leak-kinds: \(error)")
        }
    }

    func run() throws {
        let policy = try CheckPolicy(self)
        var paths = traces
        var termination: ChildProcess.Termination?
        var directory: TraceDirectory?
        if !command.isEmpty {
            let traced = try TraceDirectory(keeping: traceDir)
            directory = traced
            let started = Date()
            termination = try runCommand(into: traced)
            paths = traced.traces(since: started)
            if paths.isEmpty {
                say(
                    "no trace was written: \(command[0]) never loaded libmalloctrace.so (did it clear LD_PRELOAD,"
                        + " or is it linked statically?)")
                if let termination, termination.shellStatus != 0 { throw ExitCode(termination.shellStatus) }
                throw ExitCode(Self.unreadableStatus)
            }
        }
        let kinds = try countedKinds()
        var everyVerdict: [ProcessVerdict] = []
        var unreadable: [String] = []
        for path in paths {
            // A followed process that outlives the command (a daemon) may have only just created its trace: the
            // file exists before its header is written. Not a damaged trace, and nothing to judge yet.
            if !command.isEmpty, Self.isStillStarting(path) {
                say("\(path): its process had only begun tracing when the command ended (still running?): not judged")
                continue
            }
            do {
                everyVerdict.append(
                    try VerdictBuilder.verdict(
                        tracePath: path, countedKinds: kinds, symbolizer: symbolizerBackend,
                        stacksForBaseline: saveBaseline != nil || baseline != nil ? 200 : 0,
                        scanRequested: !command.isEmpty))
            } catch {
                unreadable.append("\(path): \(error)")
            }
        }
        let verdicts = everyVerdict.filter(policy.judges)
        let untraced = command.isEmpty ? [] : Self.untracedExecs(everyVerdict)
        if verdicts.count < everyVerdict.count {
            say(
                "judged \(verdicts.count) of \(everyVerdict.count) processes (--process "
                    + policy.processPatterns.map(\.pattern).joined(separator: ", ") + ")")
        }
        let verdict = policy.apply(to: CheckVerdict(processes: verdicts, countedKinds: kinds))
        try publish(verdict, toStandardError: !command.isEmpty)
        for problem in unreadable { say("cannot read \(problem)") }
        for problem in untraced { say(problem) }
        let failed = verdict.failed
        if let directory {
            if failed || !unreadable.isEmpty || !untraced.isEmpty || traceDir != nil {
                say("traces kept in \(directory.path)")
            } else {
                directory.remove()
            }
        }
        if let termination, termination.shellStatus != 0 { throw ExitCode(termination.shellStatus) }
        if !unreadable.isEmpty || !untraced.isEmpty { throw ExitCode(Self.unreadableStatus) }
        if failed { throw ExitCode(errorExitcode) }
    }

    static let unreadableStatus: Int32 = 66

    /// A trace file that is empty, or whose first bytes are still zero (a writer maps the file before it writes the
    /// header).
    static func isStillStarting(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let start = (try? handle.read(upToCount: 8)) ?? Data()
        return start.allSatisfy { $0 == 0 }
    }

    /// Processes that replaced themselves with exec although the new image wrote no trace: an image keeps its pid,
    /// so a pid's traces must outnumber its execs. Such a program went unjudged, which must not read as a pass.
    static func untracedExecs(_ verdicts: [ProcessVerdict]) -> [String] {
        Dictionary(grouping: verdicts, by: \.processID).values.compactMap { images in
            let execs = images.filter(\.replacedByExec)
            guard let wrapper = execs.first, execs.count >= images.count else { return nil }
            return "\(CheckText.processLabel(wrapper)) exec'd a program that wrote no trace, so it was not judged:"
                + " its environment leaves libmalloctrace.so out of LD_PRELOAD, or it is linked statically"
        }.sorted()
    }

    /// Prints the findings and writes the requested files. With a command, the text goes to stderr so that
    /// the program's own stdout stays as it was.
    private func publish(_ verdict: CheckVerdict, toStandardError: Bool) throws {
        let text: String
        if genSuppressions {
            let findings = verdict.processes.flatMap(\.findings)
            text =
                "# malloctrace check: suppressions for \(findings.count) finding(s); paste into a file for"
                + " --suppressions\n" + SuppressionGenerator.generate(for: findings)
        } else {
            switch format {
            case .text: text = LeakSanitizerTextRenderer.render(verdict)
            case .json: text = CheckJSONRenderer.render(verdict)
            }
        }
        if toStandardError {
            StandardError.write(text)
        } else {
            try StandardOutput.write(text)
        }
        if let junit { try write(JUnitRenderer.render(verdict), to: junit, option: "--junit") }
        let workspace = ProcessInfo.processInfo.environment["GITHUB_WORKSPACE"]
        if let sarif {
            try write(SARIFRenderer.render(verdict, sourceRoot: workspace), to: sarif, option: "--sarif")
        }
        if github {
            // Workflow commands are read from the job's output; they come after the program's, never inside it.
            try StandardOutput.write(GitHubRenderer.annotations(verdict, sourceRoot: workspace))
            do {
                try GitHubRenderer.appendStepSummary(GitHubRenderer.stepSummary(verdict))
            } catch {
                // The job summary is extra: the verdict, its exit status and the annotations above still stand.
                StandardError.say("no job summary: \(error.description)")
            }
        }
        if let saveBaseline {
            do {
                try Baseline(verdict).save(toPath: saveBaseline)
            } catch {
                throw CommandFailure(error.description)
            }
        }
    }

    private func write(_ text: String, to path: String, option: String) throws(CommandFailure) {
        do {
            try OutputFile.write(Data(text.utf8), toPath: path)
        } catch {
            throw CommandFailure("\(option): \(error)")
        }
    }

    private var symbolizerBackend: Symbolizer.Backend {
        guard let symbolizer else { return .automatic }
        return symbolizer == "none" ? .symbolTables : .llvmSymbolizer(path: symbolizer)
    }

    /// Runs the command with tracing and leak scanning, every process's trace in `directory`.
    private func runCommand(into directory: TraceDirectory) throws -> ChildProcess.Termination {
        let library = try PreloadLibrary.locate()
        let target = try TargetExecutable(command: command[0])
        var environment = ProcessInfo.processInfo.environment
        let existingPreload = environment["LD_PRELOAD"].flatMap { $0.isEmpty ? nil : $0 }
        environment["LD_PRELOAD"] = existingPreload.map { "\(library):\($0)" } ?? library
        environment["MALLOCTRACE_OUTPUT"] = directory.path + "/malloctrace.%e.%p.mtrace"
        environment["MALLOCTRACE_DEPTH"] = String(depth)
        environment["MALLOCTRACE_LEAK_SCAN"] = "1"
        if !noFollowChildren { environment["MALLOCTRACE_FOLLOW_CHILDREN"] = "1" }
        ChildProcess.ignoreInterrupts()
        let pid = try ChildProcess.spawn(
            path: target.path, arguments: command, environment: environment.map { "\($0.key)=\($0.value)" })
        return ChildProcess.wait(for: pid)
    }

    /// FileHandle's `write(_:)` traps when the write fails (stderr closed, full or a broken pipe).
    private func say(_ line: String) {
        StandardError.say(line)
    }
}

/// Where `check` keeps the traces of the command it runs: a directory of the user's, or a fresh temporary one.
struct TraceDirectory {
    let path: String
    let isTemporary: Bool

    init(keeping directory: String?) throws(CommandFailure) {
        if let directory {
            let absolute =
                directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
            do {
                try FileManager.default.createDirectory(atPath: absolute, withIntermediateDirectories: true)
            } catch {
                throw CommandFailure("cannot create --trace-dir \(absolute): \(error.localizedDescription)")
            }
            path = absolute
            isTemporary = false
        } else {
            var template = Array(
                (URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("malloctrace-check.XXXXXX").path)
                    .utf8CString)
            let made = template.withUnsafeMutableBufferPointer { buffer in
                buffer.baseAddress.flatMap { mkdtemp($0) }
            }
            guard let made else {
                throw CommandFailure(
                    "cannot create a temporary directory for the traces: \(String(cString: strerror(errno)))")
            }
            path = String(cString: made)
            isTemporary = true
        }
    }

    /// The traces written since `start` (a kept directory may hold older ones), oldest first.
    func traces(since start: Date) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        // File times have the file system's granularity: allow a little before the start.
        let earliest = start.addingTimeInterval(-1)
        return names.filter { $0.hasPrefix("malloctrace.") && $0.hasSuffix(".mtrace") }.map { path + "/" + $0 }
            .filter { isTemporary || modificationDate($0) >= earliest }
            .sorted { modificationDate($0) < modificationDate($1) }
    }

    private func modificationDate(_ path: String) -> Date {
        (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date ?? nil) ?? .distantPast
    }

    func remove() {
        if isTemporary { try? FileManager.default.removeItem(atPath: path) }
    }
}
