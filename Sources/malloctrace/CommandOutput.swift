import Foundation
import MallocTraceCheck

/// Writes a command's result to the file given with `-o`, or to standard output for `-` or no path. Files go
/// through ``OutputFile`` (atomic for regular files, in place for devices and FIFOs); either failure ends the
/// command with one line and a non-zero status.
enum CommandOutput {
    static func write(_ text: String, to path: String?) throws(CommandFailure) {
        try write(Array(text.utf8), to: path)
    }

    static func write(_ bytes: [UInt8], to path: String?) throws(CommandFailure) {
        guard let path, path != "-" else {
            try StandardOutput.write(bytes: bytes)
            return
        }
        do {
            try OutputFile.write(Data(bytes), toPath: path)
        } catch {
            throw CommandFailure(error.description)
        }
    }
}
