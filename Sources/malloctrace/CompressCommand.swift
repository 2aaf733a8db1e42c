import ArgumentParser
import Foundation
import MallocTraceFormat
import MallocTraceReports

struct CompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Compress trace files in place, for traces recorded without `malloctrace run`.",
        discussion: """
            `malloctrace run` compresses its traces itself once the program has exited (unless \
            --no-compress). A trace recorded with LD_PRELOAD directly is written uncompressed, 11-15 bytes \
            per allocation call, so that the traced program never waits for a compressor; this command \
            rewrites each FILE in format version 3, 10-40 times smaller for real programs (3-6 times for \
            random synthetic churn), and replaces it atomically: if anything fails, the file stays as it \
            was. Version 3 names heap blocks by when they were allocated instead of by their addresses and \
            stores each (size, call stack) pair once; --keep-addresses writes version 2 instead \
            (zstd-compressed chunks, addresses kept), as does a damaged trace. `report` and `diff` read \
            every version and give the same results. Files that are already compressed are left alone. \
            Each compressed file also gets a stored analysis (what `report` shows without options), so that \
            such a report is instant.

            Examples:
              LD_PRELOAD=$(malloctrace preload-path) MALLOCTRACE_OUTPUT=/tmp/app.%p.mtrace ./app
              malloctrace compress /tmp/app.*.mtrace
            """
    )

    @Argument(help: ArgumentHelp("Trace files to compress.", valueName: "file"))
    var files: [String]

    @Option(
        help: ArgumentHelp(
            "zstd compression level, 1-19: higher is smaller and slower (default: 3, or 1 with --keep-addresses).",
            valueName: "n"))
    var level: Int?

    @Flag(
        help: """
            Keep the addresses of heap blocks: write format version 2 (zstd-compressed chunks, several times \
            larger than version 3), for tools of your own that read them.
            """)
    var keepAddresses = false

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("name the trace files to compress") }
        if let level, !(1...19).contains(level) {
            throw ValidationError("--level must be from 1 to 19, not \(level)")
        }
    }

    func run() throws {
        var failed = false
        for path in files {
            let message: String
            do throws(TraceFileCompressor.Failure) {
                let outcome = try TraceFileCompressor.compress(
                    path: path, level: level, keepingAddresses: keepAddresses)
                // One pass over the events, so that a default `report` need not make it.
                StoredAnalysis.store(inTraceAt: path, writer: MallocTrace.configuration.version, resolvingFrames: true)
                // The file as it stands, index included (the compressor's count predates the index).
                let compressedBytes =
                    FileManager.default.sizeOfFile(atPath: path) ?? UInt64(outcome.compressedBytes)
                let ratio = Double(outcome.originalBytes) / Double(max(compressedBytes, 1))
                message =
                    "compressed \(path): \(Formatting.bytes(UInt64(outcome.originalBytes))) ->"
                    + " \(Formatting.bytes(compressedBytes)) (\(String(format: "%.1f", ratio))x smaller)"
                    + (outcome.notKeyedBecause.map { "; kept in format version 2: \($0)" } ?? "")
            } catch  where error.isAlreadyCompressed {
                message = "\(path) is already compressed"
            } catch {
                failed = true
                message = "cannot compress \(path): \(error); it is left as it was"
            }
            StandardError.say(message)
        }
        if failed { throw ExitCode(1) }
    }
}
