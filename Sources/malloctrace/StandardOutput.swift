import Foundation
import MallocTraceReports

/// Writes command output to standard output and fails loudly when it cannot: a report that went nowhere
/// (a full disk, `> /dev/full`, a closed pipe) must not end with exit status 0.
enum StandardOutput {
    static func write(_ text: String) throws(CommandFailure) {
        try write(text, to: 1, what: "standard output")
    }

    /// Writes all of `text` to `descriptor`, retrying short writes and EINTR.
    static func write(_ text: String, to descriptor: Int32, what: String) throws(CommandFailure) {
        try write(bytes: Array(text.utf8), to: descriptor, what: what)
    }

    /// Writes all of `bytes` (binary output such as a gzip file) to `descriptor`.
    static func write(bytes: [UInt8], to descriptor: Int32 = 1, what: String = "standard output") throws(CommandFailure)
    {
        if let error = DescriptorOutput.writeAll(bytes, to: descriptor) {
            throw CommandFailure("cannot write to \(what): \(String(cString: strerror(error)))")
        }
    }
}

/// Diagnostics on standard error. Never traps and never fails the command: with stderr closed or on a full
/// disk the message is lost, but the traced program's result still is what the command reports.
enum StandardError {
    static func write(_ text: String) {
        try? StandardOutput.write(text, to: 2, what: "standard error")
    }

    /// One `malloctrace: ...` line.
    static func say(_ line: String) {
        write("malloctrace: " + line + "\n")
    }
}
