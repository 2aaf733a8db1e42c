public import Foundation

/// Writes the files `check` produces (`--junit`, `--sarif`, `--save-baseline`). A regular file (or a new one)
/// is replaced atomically, so a reader never sees half of it; anything else that already exists — a device
/// such as /dev/stdout or /dev/full, a FIFO — is written in place, since replacing it would put a regular
/// file where the device was.
public enum OutputFile {
    public static func write(_ data: Data, toPath path: String) throws(CheckError) {
        var status = stat()
        if stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG {
            try writeInPlace(data, toPath: path)
            return
        }
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .unwritableFile(path: path, reason: SuppressionParser.reasonText(error))
        }
    }

    private static func writeInPlace(_ data: Data, toPath path: String) throws(CheckError) {
        // O_NONBLOCK: a FIFO nobody reads fails at once (ENXIO) instead of waiting forever.
        let descriptor = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw .unwritableFile(path: path, reason: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var failure: CheckError?
        data.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(descriptor, base + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    failure = .unwritableFile(path: path, reason: String(cString: strerror(errno)))
                    return
                }
                offset += written
            }
        }
        if let failure { throw failure }
    }
}
