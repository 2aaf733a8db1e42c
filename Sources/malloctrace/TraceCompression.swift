import Foundation
import MallocTraceFormat

/// Compresses finished traces (`TraceFileCompressor`) on a thread of its own, so that `run` can do it
/// while its summary reads the same trace: on two CPUs the compression then costs almost no wall time.
/// The summary must have opened (mapped) the trace before this starts: the rename replaces the file's
/// name, and the summary's mapping keeps reading the original.
final class TraceCompression: @unchecked Sendable {
    private let paths: [String]
    private let done = DispatchSemaphore(value: 0)
    /// Written by the compressing thread before `done` is signalled, read after it.
    private var failures: [(path: String, reason: String)] = []
    private var isStarted = false

    init(paths: [String]) { self.paths = paths }

    func start() {
        guard !isStarted else { return }
        isStarted = true
        Thread.detachNewThread { [self] in
            for path in paths {
                do throws(TraceFileCompressor.Failure) {
                    _ = try TraceFileCompressor.compress(path: path)
                } catch  where !error.isAlreadyCompressed {
                    failures.append((path, error.description))
                } catch {}
            }
            done.signal()
        }
    }

    /// Waits for the compression and says once, on stderr, which traces were kept uncompressed and why.
    func finish() {
        start()
        done.wait()
        for failure in failures {
            StandardError.say("kept \(failure.path) uncompressed: \(failure.reason)")
        }
    }
}
