import ArgumentParser
import Foundation
import MallocTraceAnalysis
import MallocTraceFormat
import MallocTraceReports
import MallocTraceSymbolication

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a program with malloc tracing and write its trace file.",
        discussion: """
            The program's stdin, stdout and stderr pass through untouched and malloctrace exits with its exit \
            status (128 + N if signal N killed it). When it ends, the trace's path and a three-line summary go \
            to stderr. Only the process itself is traced, unless --follow-children is given: then every \
            process it forks, spawns or execs writes a trace of its own (the -o pattern needs %p). Once the \
            program has exited, its traces are rewritten in format version 3 (10-40 times smaller for real \
            programs; the program itself never waits for it), unless --no-compress is given.

            With --sample-rate, only some allocations are recorded, for production use: sample points fall \
            on the program's allocated bytes at random, one per RATE bytes on average (as tcmalloc and jemalloc \
            sample), and an allocation is recorded when it holds one, with only the frees of recorded blocks. \
            Reports then show estimates scaled back up (marked ≈): bytes per call stack, the peak and leaks. \
            Large allocations are almost always recorded; small ones rarely.

            With --profile-every, a pprof profile is written into --profile-dir at the end of every interval \
            while the program runs, and one more when it ends: the blocks in use at the interval's end (inuse_*) \
            and what was allocated during it (alloc_*), per call stack, with the process's pid, executable, \
            arguments and start time in the profile's comments. Files are named EXE.PID.SEQ.TIME.pb.gz (TIME: \
            the interval's end, UTC) and appear whole (written aside, then renamed), for a collector such as \
            Pyroscope, Parca or a cron job to pick up. Each profile reads the trace from its start: combine it \
            with --sample-rate for a long-running program.

            With --paused, the library loads idle (one predictable branch per allocation call) and records \
            nothing until `malloctrace ctl PID start`; --control serves `ctl` while recording from the start \
            (see `malloctrace ctl --help` and docs/control.md).

            Examples:
              malloctrace run -- ./server --port 8080
              malloctrace run -o /tmp/build.%p.mtrace --depth 32 -- make -j2
              malloctrace run --sample-rate 512K -- ./server
              malloctrace run --sample-rate 512K --profile-every 60s --profile-dir /var/lib/profiles -- ./server
            """
    )

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp(
            "Trace file to write; %p becomes the pid, %e the program's name, %t the start time (seconds since the"
                + " epoch), %h the host name, %% a percent sign. Never overwrites an existing file.",
            valueName: "path"))
    var output: String?

    @Option(help: ArgumentHelp("Call stack frames to record per allocation (0-256).", valueName: "frames"))
    var depth: Int = 64

    @Option(
        help: ArgumentHelp(
            "Record a random sample: one allocation per this many allocated bytes on average (e.g. 512K),"
                + " and estimate the rest. Default: record every call.",
            valueName: "bytes"))
    var sampleRate: SampleRate?

    @Option(
        help: ArgumentHelp(
            "Write a pprof profile every this long while the program runs (e.g. 60s, 500ms, 5m; at least 100ms):"
                + " in use at the end of the interval, allocated during it. Needs --profile-dir.",
            valueName: "interval"))
    var profileEvery: ProfileInterval?

    @Option(
        help: ArgumentHelp(
            "Directory for --profile-every's profiles (created if missing), named EXE.PID.SEQ.TIME.pb.gz.",
            valueName: "directory"))
    var profileDir: String?

    @Flag(
        help: ArgumentHelp(
            "Load the library idle: nothing is recorded until `malloctrace ctl PID start` (which --paused enables)."))
    var paused = false

    @Flag(
        help: "Serve `malloctrace ctl PID start|stop|mark|snapshot` while the program runs (a thread of the library).")
    var control = false

    @Flag(help: "Also trace the processes it starts (fork, exec, posix_spawn, system), each into its own file.")
    var followChildren = false

    @Flag(
        help: ArgumentHelp(
            "Scan the program's memory for pointers when it exits, so that reports tell leaks (definite, indirect)"
                + " from blocks still reachable or possibly reachable at exit, as LeakSanitizer and valgrind do."))
    var leakKinds = false

    @Flag(
        name: .customLong("mmap"),
        help: ArgumentHelp(
            "Also record the program's own anonymous mmap, munmap and mremap calls and brk/sbrk moves, with their"
                + " call stacks (malloc's own mappings are already known from its blocks): memory that never came"
                + " through malloc, such as CPython's pymalloc arenas, shows up by call stack in"
                + " 'report --allocator'."))
    var mappings = false

    @Flag(help: "Keep the trace as the program wrote it, uncompressed (`malloctrace compress` can do it later).")
    var noCompress = false

    @Argument(
        parsing: .captureForPassthrough,
        help: ArgumentHelp("The program to trace and its arguments (put them after --).", valueName: "command"))
    var command: [String] = []

    mutating func validate() throws {
        // The command is captured verbatim, options included; only --help / -h before it mean help.
        if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
        if command.first == "--" { command.removeFirst() }
        guard !command.isEmpty else {
            throw ValidationError("name the program to trace: malloctrace run -- PROGRAM [ARGS...]")
        }
        guard (0...256).contains(depth) else { throw ValidationError("--depth must be from 0 to 256, not \(depth)") }
        if let output, let escape = Self.unknownEscape(in: output) {
            throw ValidationError("-o has an unknown escape '\(escape)' (use %p, %e, %t, %h or %%)")
        }
        if (profileEvery == nil) != (profileDir == nil) {
            throw ValidationError(
                profileEvery == nil
                    ? "--profile-dir needs --profile-every (how often to write a profile)"
                    : "--profile-every needs --profile-dir (where to write the profiles)")
        }
        if followChildren, let output, !output.contains("%p") {
            throw ValidationError("with --follow-children, -o needs %p so that every process gets its own file")
        }
    }

    func run() throws {
        let library = try PreloadLibrary.locate()
        let target = try TargetExecutable(command: command[0])
        if target.isScript && !followChildren {
            // A wrapper script would otherwise give a trace of its shell alone, without a word.
            StandardError.say(
                "\(command[0]) is a script: only its interpreter is traced, not the programs it"
                    + " runs (add --follow-children for those)")
        }
        let pattern = try outputPattern(programName: URL(fileURLWithPath: command[0]).lastPathComponent)

        var environment = ProcessInfo.processInfo.environment
        let existingPreload = environment["LD_PRELOAD"].flatMap { $0.isEmpty ? nil : $0 }
        environment["LD_PRELOAD"] = existingPreload.map { "\(library):\($0)" } ?? library
        environment["MALLOCTRACE_OUTPUT"] = pattern
        environment["MALLOCTRACE_DEPTH"] = String(depth)
        if followChildren { environment["MALLOCTRACE_FOLLOW_CHILDREN"] = "1" }
        if leakKinds { environment["MALLOCTRACE_LEAK_SCAN"] = "1" }
        if mappings { environment["MALLOCTRACE_MMAP"] = "1" }
        if let sampleRate { environment["MALLOCTRACE_SAMPLE_RATE"] = String(sampleRate.bytes) }
        // A profile's cut by time is exact only when every event reads the clock (see IntervalProfiler).
        if profileEvery != nil { environment["MALLOCTRACE_CLOCK_EVERY"] = "1" }
        if paused { environment["MALLOCTRACE_START"] = "paused" }
        if control || paused { environment["MALLOCTRACE_CONTROL"] = "1" }
        if let profileDir { try PeriodicProfiles.prepare(directory: profileDir) }
        let started = Date()

        ChildProcess.ignoreInterrupts()
        let pid = try ChildProcess.spawn(
            path: target.path, arguments: command, environment: environment.map { "\($0.key)=\($0.value)" })
        let termination: ChildProcess.Termination
        if let profileEvery, let profileDir {
            let profiles = PeriodicProfiles(interval: profileEvery.nanoseconds, directory: profileDir)
            termination = profiles.follow(pid: pid) {
                Self.writtenTrace(Self.expand(pattern, pid: pid), since: started)
            }
        } else {
            termination = ChildProcess.wait(for: pid)
        }
        let tracePath = Self.writtenTrace(Self.expand(pattern, pid: pid), since: started)
        let children = followChildren ? childTraces(pattern: pattern, root: tracePath, since: started) : []
        // Compressed on a second thread while the summary reads the trace, once the summary has mapped it.
        let compression = noCompress ? nil : TraceCompression(paths: [tracePath] + children)
        defer { compression?.finish() }
        // The frames the stored analysis keeps need llvm-symbolizer after the summary's pass. Started now, it
        // loads while the pass runs, which pays once the pass is the longer of the two (traces of a few MB).
        let symbolizer = StoredAnalysis.frameSymbolizer()
        if compression != nil, FileManager.default.sizeOfFile(atPath: tracePath) ?? 0 >= Self.earlySymbolizerTraceSize {
            symbolizer.startProcess()
        }
        let analysis = try summarize(
            tracePath: tracePath, termination: termination, onceOpened: { compression?.start() })
        // Stored once compressed: the pass above read the same events, so `report` need not read them again.
        if let compression, var digest = analysis?.digest, analysis?.isStorable == true {
            // While the trace is being compressed: the printed frames, so that the report need not resolve them.
            StoredAnalysis.resolveFrames(of: &digest, traceStart: analysis?.traceStart, symbolizer: symbolizer)
            compression.storeAnalysis(digest, in: tracePath)
        }
        if followChildren { listChildTraces(children) }
        throw ExitCode(termination.shellStatus)
    }

    /// Raw trace bytes from which the summary's pass takes longer than llvm-symbolizer's start-up (about 30 ms):
    /// some 600,000 events.
    static let earlySymbolizerTraceSize: UInt64 = 4 << 20

    /// The first `%` escape in `pattern` that the library does not know, if any.
    static func unknownEscape(in pattern: String) -> String? {
        var iterator = pattern.makeIterator()
        while let character = iterator.next() {
            guard character == "%" else { continue }
            let next = iterator.next()
            guard let next, "pet%h".contains(next) else { return "%" + (next.map(String.init) ?? "") }
        }
        return nil
    }

    /// The MALLOCTRACE_OUTPUT pattern: absolute, %e, %t and %h already expanded (so that this command knows
    /// the name), %p left for the library.
    private func outputPattern(programName: String) throws(CommandFailure) -> String {
        func escaped(_ text: String) -> String { text.replacingOccurrences(of: "%", with: "%%") }
        let escapedName = escaped(programName)
        var pattern = output ?? "malloctrace.\(escapedName).%p.mtrace"
        pattern = Self.replacing(
            in: pattern,
            [
                "e": escapedName, "t": String(Int(Date().timeIntervalSince1970)),
                "h": escaped(Self.hostName()),
            ])
        if !pattern.hasPrefix("/") {
            pattern = FileManager.default.currentDirectoryPath + "/" + pattern
        }
        if !pattern.contains("%p") {
            let path = Self.expand(pattern, pid: 0)
            if FileManager.default.fileExists(atPath: path) {
                throw CommandFailure("\(path) already exists; malloctrace never overwrites a trace (use another -o)")
            }
        }
        return pattern
    }

    /// The other files the pattern produced during this run: one per followed process (`%p` is any pid,
    /// and an exec'd image that kept its pid adds `-N` before `.mtrace`).
    private func childTraces(pattern: String, root: String, since start: Date) -> [String] {
        let url = URL(fileURLWithPath: pattern)
        let directory = url.deletingLastPathComponent().path
        let parts = url.lastPathComponent.components(separatedBy: "%p")
        guard parts.count == 2, let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            return []
        }
        let prefix = Self.expand(parts[0], pid: 0)
        let suffix = Self.expand(parts[1], pid: 0)
        let (stem, fileExtension) = suffix.hasSuffix(".mtrace") ? (String(suffix.dropLast(7)), ".mtrace") : (suffix, "")
        let escape = NSRegularExpression.escapedPattern(for:)
        guard
            let name = try? NSRegularExpression(
                pattern: "^\(escape(prefix))[0-9]+\(escape(stem))(-[0-9]+)?\(escape(fileExtension))$")
        else { return [] }
        return names.filter { name.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) != nil }
            .map { directory + "/" + $0 }
            .filter { path in
                let modified = try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
                return path != root && (modified ?? .distantPast) >= start
            }
            .sorted()
    }

    /// `path`, or the NAME-N.mtrace the library chose because `path` existed already (a reused pid).
    static func writtenTrace(_ path: String, since start: Date) -> String {
        let manager = FileManager.default
        guard manager.fileExists(atPath: path) else { return path }
        let modified = (try? manager.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? .distantPast
        if modified >= start { return path }
        let stem = path.hasSuffix(".mtrace") ? String(path.dropLast(7)) : path
        let suffix = path.hasSuffix(".mtrace") ? ".mtrace" : ""
        var newest = path
        for number in 2... {
            let candidate = "\(stem)-\(number)\(suffix)"
            guard manager.fileExists(atPath: candidate) else { break }
            newest = candidate
        }
        return newest
    }

    private func listChildTraces(_ children: [String]) {
        let message =
            children.isEmpty ? "no child process was traced" : "child traces: " + children.joined(separator: " ")
        StandardError.say(message)
    }

    /// gethostname, as the library calls it (ProcessInfo.hostName may ask DNS for a longer name).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Replaces the escapes named in `values` (letter → text), leaving every other escape as it is.
    static func replacing(in pattern: String, _ values: [Character: String]) -> String {
        var result = ""
        var iterator = pattern.makeIterator()
        while let character = iterator.next() {
            guard character == "%" else {
                result.append(character)
                continue
            }
            guard let next = iterator.next() else {
                result.append("%")
                break
            }
            result += values[next] ?? "%" + String(next)
        }
        return result
    }

    /// Expands %p and %% exactly as the preload library does.
    static func expand(_ pattern: String, pid: pid_t) -> String {
        replacing(in: pattern, ["p": String(pid), "%": "%"])
    }

    /// Prints the summary; calls `onceOpened` as soon as nothing more needs the trace's name (the reader
    /// has mapped the file, or there is nothing to read). Returns the analysis behind it: what a default
    /// `report` shows, before any frame is resolved.
    private func summarize(
        tracePath: String, termination: ChildProcess.Termination, onceOpened: () -> Void
    ) throws -> (digest: ReportDigest, isStorable: Bool, traceStart: UInt64?)? {
        func say(_ line: String) { StandardError.say(line) }
        guard FileManager.default.fileExists(atPath: tracePath) else {
            onceOpened()
            say(
                "no trace was written to \(tracePath): the library could not create it (see the malloctrace: line"
                    + " above, if any) or \(command[0]) never loaded libmalloctrace.so (did it clear LD_PRELOAD?)")
            if case .exited(0) = termination { throw ExitCode(1) }
            return nil
        }
        // Totals only: no symbolization, so the summary costs one pass over the events and nothing more.
        let reader: TraceReader
        do {
            reader = try TraceReader(path: tracePath)
            onceOpened()
        } catch {
            onceOpened()
            say("wrote \(tracePath), but cannot read it back: \(error)")
            return nil
        }
        // The pass a default `report` makes (no symbolization), so that its result can be stored.
        let analysis = StoredAnalysis.analyze(reader)
        let digest = analysis.digest
        let summary = digest.summary
        say("wrote \(tracePath)")
        // Byte figures of a sampled trace are estimates: mark them.
        let about = reader.sampling == nil ? "" : "≈"
        let calls =
            reader.sampling.map { sampling in
                "≈\(Formatting.counted(UInt64(sampling.estimatedAllocationCalls.rounded()), "allocation call"))"
                    + " (\(Formatting.counted(sampling.samples, "sample")), one per \(Formatting.bytes(sampling.rate)))"
            } ?? Formatting.counted(summary.allocationCalls, "allocation call")
        let frees = Formatting.counted(summary.freeCalls, reader.sampling == nil ? "free" : "sampled free")
        say(
            "\(calls), \(frees), \(about)\(Formatting.bytes(summary.bytesAllocated)) allocated;"
                + " peak \(about)\(Formatting.bytes(summary.peakBytes)) at \(Formatting.seconds(nanoseconds: summary.peakTime))"
        )
        // As `report` counts by default: with a leak scan, definite and indirect leaks, not blocks reachable at exit.
        let leaked = LeakAmount(bytes: summary.leakedBytes, blocks: summary.leakedBlocks)
        let sites = digest.leakSiteCount
        var kinds = ""
        if reader.leakScan != nil {
            let reachable = digest.leakKinds[.reachable].bytes + digest.leakKinds[.possible].bytes
            kinds = " (definite and indirect; \(Formatting.bytes(reachable)) still reachable at exit)"
        }
        // A trace without an END from a program that exited: the library stopped writing (its own line
        // above says why), so the figures cover only the part before that.
        let stoppedEarly: Bool
        if case .exited = termination, reader.end == nil { stoppedEarly = true } else { stoppedEarly = false }
        let ending =
            !reader.isTruncated
            ? ""
            : stoppedEarly
                ? "; the trace stops before the program's end (tracing stopped; see the malloctrace: line above),"
                    + " so these figures cover only its first part"
                : "; the trace is truncated (\(termination.summary))"
        let blocks = Formatting.counted(leaked.blocks, reader.sampling == nil ? "block" : "sampled block")
        say(
            "leaked \(about)\(Formatting.bytes(leaked.bytes)) in \(blocks) from"
                + " \(Formatting.counted(UInt64(sites), "call stack"))\(kinds)\(ending)")
        say("details: malloctrace report \(tracePath)")
        return (analysis.digest, analysis.isStorable, reader.process?.startRealtime)
    }
}

extension ChildProcess.Termination {
    var summary: String {
        switch self {
        case .exited(let code): "it exited with status \(code)"
        case .signaled(let signal): "it was killed by signal \(signal)"
        }
    }
}
