import Foundation

/// Finds the libmalloctrace.so built with this CLI.
enum PreloadLibrary {
    static let fileName = "libmalloctrace.so"

    /// Looks next to the executable: in the SwiftPM resource bundle (`swift build` layout), then in
    /// `../lib/malloctrace/` (an installed layout). `MALLOCTRACE_PRELOAD_LIBRARY` overrides both.
    static func locate() throws(CommandFailure) -> String {
        if let override = ProcessInfo.processInfo.environment["MALLOCTRACE_PRELOAD_LIBRARY"], !override.isEmpty {
            guard FileManager.default.isReadableFile(atPath: override) else {
                throw CommandFailure("MALLOCTRACE_PRELOAD_LIBRARY names \(override), which is not a readable file")
            }
            return override
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let directory = executable.deletingLastPathComponent()
        let candidates = [
            directory.appendingPathComponent("malloctrace_malloctrace.resources/\(fileName)"),
            directory.deletingLastPathComponent().appendingPathComponent("lib/malloctrace/\(fileName)"),
        ]
        for candidate in candidates where FileManager.default.isReadableFile(atPath: candidate.path) {
            return candidate.path
        }
        throw CommandFailure(
            "cannot find \(fileName) next to \(executable.path) (looked in "
                + candidates.map(\.path).joined(separator: " and ") + "); rebuild with `swift build`")
    }
}

/// A failure with a one-line, user-facing message; the CLI prints it and exits non-zero.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
