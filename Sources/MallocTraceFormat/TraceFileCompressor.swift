#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Compresses a trace file in place, atomically: the compressed trace is written to a new file in the
/// same directory (created exclusively, mode 0600, like the preload library's) and renamed over the
/// original. Whatever fails, the original is left as it was and the temporary file is removed.
public enum TraceFileCompressor {
    /// File sizes before and after.
    public struct Outcome: Sendable, Equatable {
        public var originalBytes: Int
        public var compressedBytes: Int
        /// Why version 3 was asked for and version 2 written (a damaged trace, pools that claim heap blocks).
        public var notKeyedBecause: String?
    }

    /// Why a file was left as it was: one line, without the path.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
        public let isAlreadyCompressed: Bool

        init(_ description: String, isAlreadyCompressed: Bool = false) {
            self.description = description
            self.isAlreadyCompressed = isAlreadyCompressed
        }
    }

    /// Rewrites the trace at `path` as version 3 (``KeyedTraceEncoder``) or, with `keepingAddresses` or when the
    /// keyed form does not apply to it, as version 2 (``TraceCompressor``); `level` is zstd's (1-19), nil for
    /// the encoder's default.
    public static func compress(path: String, level: Int? = nil, keepingAddresses: Bool = false) throws(Failure)
        -> Outcome
    {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch {
            throw Failure(error.description)
        }
        let encoder: KeyedTraceEncoder?
        do {
            encoder = keepingAddresses ? nil : try KeyedTraceEncoder(level: level ?? KeyedTraceEncoder.defaultLevel)
        } catch {
            throw Failure(error.description)
        }
        if let pid = try? TraceReader(path: path).process?.pid, isRunning(pid_t(bitPattern: pid)) {
            // Its writer may still be appending: the events after the copy would be lost.
            throw Failure("process \(pid), which writes it, is still running")
        }
        var temporary = TemporaryFile(beside: path)
        let fd = try temporary.create()
        var written = 0
        var notKeyedBecause: String?
        do throws(TraceCompressor.Failure) {
            try file.withBytes { (bytes: UnsafeRawBufferPointer) throws(TraceCompressor.Failure) in
                // Memory follows the record being compressed, not the size of the trace.
                let pages = file.pageReleaser
                let output = { (piece: UnsafeRawBufferPointer) throws(TraceCompressor.Failure) in
                    try writeAll(piece, to: fd, path: temporary.path)
                    written += piece.count
                }
                if let encoder {
                    do throws(TraceCompressor.Failure) {
                        try encoder.encode(bytes, done: { pages.release($0) }, write: output)
                        return
                    } catch .notKeyable(let reason) {
                        notKeyedBecause = reason
                        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
                            throw .output("cannot rewrite \(temporary.path): \(lastError())")
                        }
                        written = 0
                    }
                }
                let compressor = try TraceCompressor(level: level ?? TraceCompressor.defaultLevel)
                try compressor.compress(bytes, done: { pages.release($0) }, write: output)
            }
        } catch {
            temporary.discard(fd)
            throw Failure(error.description, isAlreadyCompressed: error == .alreadyCompressed)
        }
        if close(fd) != 0 {
            let reason = lastError()
            temporary.discard(-1)
            throw Failure("cannot write \(temporary.path): \(reason)")
        }
        if rename(temporary.path, path) != 0 {
            let reason = lastError()
            temporary.discard(-1)
            throw Failure("cannot replace it with \(temporary.path): \(reason)")
        }
        return Outcome(
            originalBytes: file.count, compressedBytes: written,
            notKeyedBecause: notKeyedBecause)
    }

    private static func isRunning(_ pid: pid_t) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
    }

    private static func writeAll(
        _ bytes: UnsafeRawBufferPointer, to fd: Int32, path: String
    ) throws(TraceCompressor.Failure) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let result = write(fd, base + done, bytes.count - done)
            if result < 0 && errno == EINTR { continue }
            if result <= 0 { throw .output("cannot write \(path): \(lastError())") }
            done += result
        }
    }

    fileprivate static func lastError() -> String { String(cString: strerror(errno)) }
}

/// `DIR/.NAME.XXXXXX`, made by mkstemp: a new file (O_EXCL) of mode 0600 next to the trace, hidden
/// from `ls` and from the file name patterns that find child traces.
private struct TemporaryFile {
    private(set) var path: String

    init(beside tracePath: String) {
        let slash = tracePath.lastIndex(of: "/")
        let directory = slash.map { String(tracePath[...$0]) } ?? ""
        let name = slash.map { String(tracePath[tracePath.index(after: $0)...]) } ?? tracePath
        path = directory + "." + name + ".XXXXXX"
    }

    mutating func create() throws(TraceFileCompressor.Failure) -> Int32 {
        var template = Array(path.utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { $0.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0 else {
            let reason = TraceFileCompressor.lastError()
            let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
            throw TraceFileCompressor.Failure(
                "cannot create a temporary file in \(directory.isEmpty ? "/" : directory): \(reason)")
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return fd
    }

    func discard(_ fd: Int32) {
        if fd >= 0 { close(fd) }
        unlink(path)
    }
}
