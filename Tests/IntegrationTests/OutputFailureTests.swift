import Foundation
import MallocTraceFormat
import Testing

/// When the trace cannot be written, the target must not notice: same stdout and exit status as untraced,
/// exactly one `malloctrace:` line on stderr, no existing file touched. The library is preloaded directly
/// (not through `malloctrace run`, whose own summary lines would mix into stderr).
@Suite(.serialized) struct OutputFailureTests {
    /// Runs `program arguments` (by default `fixture-patterns PATTERN`) untraced and then traced into
    /// `output`, optionally through a wrapper command that execs the rest of its arguments; checks that the
    /// target noticed nothing and returns the one line the library wrote on stderr.
    private func expectUnaffected(
        pattern: String, output: String, wrapper: [String] = [], program: String = Products.fixture("patterns"),
        library: String = Products.preloadLibrary
    ) throws -> String {
        try expectUnaffected(
            arguments: [pattern], output: output, wrapper: wrapper, program: program, library: library)
    }

    private func expectUnaffected(
        arguments: [String], output: String, wrapper: [String] = [], program: String, library: String
    ) throws -> String {
        func run(_ environment: [String]) throws -> ProcessResult {
            let command = wrapper + ["/usr/bin/env"] + environment + [program] + arguments
            return try runProgram(command[0], Array(command.dropFirst()), removing: ["LD_PRELOAD"])
        }
        let untraced = try run([])
        #expect(untraced.status == 0, "\(untraced.stderr)")
        let traced = try run(["LD_PRELOAD=\(library)", "MALLOCTRACE_OUTPUT=\(output)"])
        #expect(traced.signal == nil, "the target was killed by signal \(traced.signal ?? 0)")
        #expect(traced.status == untraced.status)
        #expect(traced.stdout == untraced.stdout)
        let lines = traced.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == 1, "stderr: \(traced.stderr)")
        #expect(lines.first?.hasPrefix("malloctrace: ") == true)
        return String(lines.first ?? "")
    }

    @Test func missingDirectory() throws {
        let scratch = try Scratch()
        let output = scratch.path("missing/t.mtrace")
        let line = try expectUnaffected(pattern: "leaks", output: output)
        #expect(line == "malloctrace: cannot create trace file \(output): No such file or directory; tracing is off")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("missing")))
    }

    /// Root may write anywhere, so as root the target runs as `nobody` (copies of the fixture and the library
    /// go into the scratch directory, which `nobody` can read wherever the repository lives).
    @Test(.enabled(if: geteuid() != 0 || canRunAsNobody, "root without setpriv or CAP_SETUID"))
    func unwritableDirectory() throws {
        let scratch = try Scratch()
        let manager = FileManager.default
        try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.url.path)
        let directory = scratch.path("read-only")
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: false)
        try manager.setAttributes([.posixPermissions: 0o555], ofItemAtPath: directory)
        var wrapper: [String] = []
        var program = Products.fixture("patterns")
        var library = Products.preloadLibrary
        if geteuid() == 0 {
            wrapper = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            program = scratch.path("fixture-patterns")
            library = scratch.path("libmalloctrace.so")
            try manager.copyItem(atPath: Products.fixture("patterns"), toPath: program)
            try manager.copyItem(atPath: Products.preloadLibrary, toPath: library)
        }
        let output = directory + "/t.%p.mtrace"
        let line = try expectUnaffected(
            pattern: "leaks", output: output, wrapper: wrapper, program: program, library: library)
        #expect(line.hasPrefix("malloctrace: cannot create trace file \(directory)/t."))
        #expect(line.hasSuffix(": Permission denied; tracing is off"))
        #expect(try manager.contentsOfDirectory(atPath: directory).isEmpty)
    }

    /// O_NOFOLLOW | O_EXCL: a symlink is never followed, whether its target exists or not; the trace goes
    /// to a fresh name beside it.
    @Test(arguments: [true, false])
    func outputIsASymlink(targetExists: Bool) throws {
        let scratch = try Scratch()
        let target = scratch.path("target")
        if targetExists { try Data("precious".utf8).write(to: URL(fileURLWithPath: target)) }
        let link = scratch.path("link.mtrace")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let line = try expectUnaffected(pattern: "leaks", output: link)
        #expect(line == "malloctrace: \(link) exists; the trace goes to \(scratch.path("link-2.mtrace")) instead")
        #expect(try TraceReader(path: scratch.path("link-2.mtrace")).end != nil)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == target)
        if targetExists {
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "precious")
        } else {
            #expect(!FileManager.default.fileExists(atPath: target))
        }
    }

    @Test func existingFileIsKept() throws {
        let scratch = try Scratch()
        let existing = scratch.path("keep.mtrace")
        try Data("precious".utf8).write(to: URL(fileURLWithPath: existing))
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: existing)
        let line = try expectUnaffected(pattern: "leaks", output: existing)
        #expect(line == "malloctrace: \(existing) exists; the trace goes to \(scratch.path("keep-2.mtrace")) instead")
        #expect(try TraceReader(path: scratch.path("keep-2.mtrace")).end != nil)
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "precious")
        let mode = try FileManager.default.attributesOfItem(atPath: existing)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o644)
    }

    /// A process that could not start tracing must still remove the tracer from its children's environment:
    /// otherwise every program it starts prints the same failure again and sees LD_PRELOAD and MALLOCTRACE_*.
    @Test func childrenOfAProcessThatCouldNotTraceRunUntraced() throws {
        let scratch = try Scratch()
        let missing = scratch.path("missing/t.mtrace")
        let script = "/bin/true; /bin/true; env | grep -c -e LD_PRELOAD -e MALLOCTRACE_ || true"
        let line = try expectUnaffected(
            arguments: ["-c", script], output: missing, program: "/bin/sh", library: Products.preloadLibrary)
        #expect(line == "malloctrace: cannot create trace file \(missing): No such file or directory; tracing is off")
    }

    /// A typo in the pattern turns tracing off with one line, instead of a file with a '%' in its name.
    @Test func unknownEscapeInTheOutputPattern() throws {
        let scratch = try Scratch()
        let output = scratch.path("t.%q.mtrace")
        let line = try expectUnaffected(pattern: "leaks", output: output)
        #expect(
            line == "malloctrace: MALLOCTRACE_OUTPUT has an unknown escape '%q' in '\(output)'"
                + " (use %p, %e, %t, %h or %%); tracing is off")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
    }

    /// A program that closes every descriptor from 3 up (as daemons do) and opens files of its own gets the
    /// numbers the tracer's descriptors had. With a low descriptor limit the trace file's number is low too.
    /// The tracer must never extend, map, truncate or write its message into the program's files: with few
    /// pairs the trace just keeps its zero fill; with many, growing the trace fails with one line on stderr.
    @Test(arguments: [1000, 600_000])
    func programClosesTheTracersDescriptors(pairs: Int) throws {
        let scratch = try Scratch()
        var outputs: [String: ProcessResult] = [:]
        for run in ["untraced", "traced"] {
            let directory = scratch.path(run)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            var command = ["--nofile=64", "--", "/usr/bin/env"]
            if run == "traced" {
                command += ["LD_PRELOAD=\(Products.preloadLibrary)", "MALLOCTRACE_OUTPUT=\(scratch.path("t.mtrace"))"]
            }
            command += [Products.fixture("patterns"), "closefrom", directory, String(pairs)]
            outputs[run] = try runProgram("/usr/bin/prlimit", command, removing: ["LD_PRELOAD"])
            for index in 0..<8 {
                let contents = try String(contentsOfFile: directory + "/out.\(index)", encoding: .utf8)
                #expect(contents == "file \(index)\n", "\(run) out.\(index)")
            }
        }
        let untraced = try #require(outputs["untraced"]), traced = try #require(outputs["traced"])
        #expect(untraced.status == 0, "\(untraced.stderr)")
        #expect(traced.status == untraced.status)
        #expect(traced.stdout == untraced.stdout)
        if pairs < 100_000 {
            #expect(traced.stderr.isEmpty)
            #expect(try TraceReader(path: scratch.path("t.mtrace")).end != nil)
        } else {
            #expect(
                traced.stderr == "malloctrace: the program closed the trace file's descriptor: Bad file descriptor;"
                    + " tracing stopped, the trace ends here\n")
        }
    }

    /// `ulimit -f` below what the trace needs: the library checks RLIMIT_FSIZE before it grows the file (a
    /// window shrinks to what the limit leaves), so the target never gets SIGXFSZ (which would kill it). The
    /// trace keeps what fit, ends without an END record and is mode 0600.
    @Test func fileSizeLimit() throws {
        let scratch = try Scratch()
        let output = scratch.path("limited.mtrace")
        let limit = 3 << 20
        let line = try expectUnaffected(
            pattern: "grow", output: output, wrapper: ["/usr/bin/prlimit", "--fsize=\(limit)", "--"])
        #expect(
            line == "malloctrace: the trace file reached the file size limit (ulimit -f): File too large;"
                + " tracing stopped, the trace ends here")
        try expectReadableCutTrace(output, maximumSize: limit)
    }

    /// A full file system (a 3 MiB tmpfs in a private mount namespace, where unprivileged user namespaces or
    /// root allow it): the trace fills it, then cannot grow.
    @Test(.enabled(if: PrivateTmpfs.isAvailable, "needs unshare --user --mount and a tmpfs mount"))
    func diskFull() throws {
        let scratch = try Scratch()
        let mountPoint = scratch.path("full")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        let copy = scratch.path("copy.mtrace")
        // The trace lives only inside the namespace: copy it out before the mount goes away.
        let script =
            "trace=$1; copy=$2; shift 2; \"$@\"; status=$?; cp -p \"$trace\" \"$copy\" 2>/dev/null; exit $status"
        let wrapper =
            PrivateTmpfs.wrapper(size: "3m", at: mountPoint) + [
                "sh", "-c", script, "sh", mountPoint + "/t.mtrace", copy,
            ]
        let line = try expectUnaffected(pattern: "grow", output: mountPoint + "/t.mtrace", wrapper: wrapper)
        #expect(
            line == "malloctrace: cannot extend the trace file: No space left on device;"
                + " tracing stopped, the trace ends here")
        try expectReadableCutTrace(copy, maximumSize: 3 << 20)
    }

    /// Scans the records only (a full event pass over 4 MiB takes seconds in a debug build).
    private func expectReadableCutTrace(_ path: String, maximumSize: Int) throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        #expect(size > 0 && size <= maximumSize)
        let reader = try TraceReader(path: path)
        #expect(reader.isTruncated)
        #expect(reader.end == nil)
        #expect(reader.diagnostics.isEmpty)
        #expect(reader.process?.arguments.last == "grow")
    }
}

private let canRunAsNobody: Bool = {
    let result = try? runProgram(
        "/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/true"], timeout: 10)
    return result?.status == 0
}()

/// `unshare --user --map-root-user --mount` with a tmpfs mounted over a directory, private to the command.
enum PrivateTmpfs {
    static func wrapper(size: String, at directory: String) -> [String] {
        [
            "/usr/bin/unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            "mount -t tmpfs -o size=\"$1\" tmpfs \"$2\" || exit 125; shift 2; exec \"$@\"", "sh", size, directory,
        ]
    }

    static let isAvailable: Bool = {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), let scratch = try? Scratch() else {
            return false
        }
        let command = wrapper(size: "64k", at: scratch.url.path) + ["true"]
        let result = try? runProgram(command[0], Array(command.dropFirst()), timeout: 10)
        return result?.status == 0
    }()
}
