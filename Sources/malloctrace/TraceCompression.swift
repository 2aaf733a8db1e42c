import ArgumentParser
import Foundation
import MallocTraceFormat
import MallocTraceReports

/// Compresses finished traces (`TraceFileCompressor`) on a thread of its own, so that `run` can do it
/// while its summary reads the same trace: on two CPUs the compression then costs almost no wall time.
/// The summary must have opened (mapped) the trace before this starts: the rename replaces the file's
/// name, and the summary's mapping keeps reading the original.
///
/// Each compressed trace then gets its stored analysis (``StoredAnalysis``): the summary's for the trace it
/// read, a pass of its own on this thread for the others (followed children).
final class TraceCompression: @unchecked Sendable {
    private let paths: [String]
    private let done = DispatchSemaphore(value: 0)
    /// Written by the compressing thread before `done` is signalled, read after it.
    private var failures: [(path: String, reason: String)] = []
    private var compressed: Set<String> = []
    private var isStarted = false
    /// Set by the calling thread before ``finish()``: analyses to store once their trace is compressed.
    private var analyses: [String: ReportDigest] = [:]
    private static let writer = MallocTrace.configuration.version

    init(paths: [String]) { self.paths = paths }

    func start() {
        guard !isStarted else { return }
        isStarted = true
        Thread.detachNewThread { [self] in
            for path in paths {
                do throws(TraceFileCompressor.Failure) {
                    _ = try TraceFileCompressor.compress(path: path)
                    compressed.insert(path)
                    // A followed child's analysis without its frames: resolving them costs an llvm-symbolizer
                    // run per process, too much for a build's hundreds of short processes.
                    if path != paths.first {
                        StoredAnalysis.store(inTraceAt: path, writer: Self.writer, resolvingFrames: false)
                    }
                } catch  where !error.isAlreadyCompressed {
                    failures.append((path, error.description))
                } catch {}
            }
            done.signal()
        }
    }

    /// Stores `digest`, the analysis of the first trace's events, in it once it is compressed.
    func storeAnalysis(_ digest: ReportDigest, in path: String) { analyses[path] = digest }

    /// Waits for the compression and says once, on stderr, which traces were kept uncompressed and why.
    func finish() {
        start()
        done.wait()
        for (path, digest) in analyses where compressed.contains(path) {
            StoredAnalysis.store(digest, inTraceAt: path, writer: Self.writer)
        }
        analyses = [:]
        for failure in failures {
            StandardError.say("kept \(failure.path) uncompressed: \(failure.reason)")
        }
    }
}
