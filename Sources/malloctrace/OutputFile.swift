import Foundation

/// Writes a command's result to a file given with `-o`, or to standard output for `-` or no path. A file is
/// written atomically (a temporary file renamed into place), so a failed write never leaves a half file;
/// either failure ends the command with one line and a non-zero status.
enum OutputFile {
    static func write(_ text: String, to path: String?) throws(CommandFailure) {
        try write(Array(text.utf8), to: path)
    }

    static func write(_ bytes: [UInt8], to path: String?) throws(CommandFailure) {
        guard let path, path != "-" else {
            try StandardOutput.write(bytes: bytes)
            return
        }
        // A device or FIFO (`-o /dev/full`, `-o /dev/stdout`) is written in place: renaming a temporary file
        // over it would replace the device node itself.
        var status = stat()
        if stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG {
            let descriptor = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw CommandFailure("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(descriptor) }
            try StandardOutput.write(bytes: bytes, to: descriptor, what: path)
            return
        }
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw CommandFailure("cannot write \(path): \(Self.reason(error))")
        }
    }

    /// The POSIX reason of a Foundation file error (`No space left on device`), else its description.
    static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain
        {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return nsError.localizedDescription
    }
}
