import Foundation
import MallocTraceSymbolication

/// The program `malloctrace run` launches, checked before launch so that tracing cannot silently fail.
struct TargetExecutable {
    let path: String
    /// The file starts with `#!`: the kernel runs its interpreter, which is what gets traced.
    private(set) var isScript = false

    /// Resolves `command` like a shell would (PATH lookup when it has no slash).
    init(command: String) throws(CommandFailure) {
        if command.contains("/") {
            path = command
        } else {
            let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            let found = searchPath.split(separator: ":", omittingEmptySubsequences: false)
                .map { ($0.isEmpty ? "." : String($0)) + "/" + command }
                .first { FileManager.default.isExecutableFile(atPath: $0) && !Self.isDirectory($0) }
            guard let found else { throw CommandFailure("\(command): command not found in PATH") }
            path = found
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw CommandFailure("\(path): no such file")
        }
        guard !Self.isDirectory(path), FileManager.default.isExecutableFile(atPath: path) else {
            throw CommandFailure("\(path): not an executable file")
        }
        try checkPreloadable()
    }

    private static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// LD_PRELOAD has no effect on static executables and is ignored for set-user-ID programs run by another
    /// user; both would otherwise give an empty trace without a word.
    private mutating func checkPreloadable() throws(CommandFailure) {
        var status = stat()
        if stat(path, &status) == 0 {
            let setUID = status.st_mode & S_ISUID != 0 && status.st_uid != geteuid()
            let setGID = status.st_mode & S_ISGID != 0 && status.st_gid != getegid()
            if setUID || setGID {
                throw CommandFailure(
                    "\(path) is set-user-ID or set-group-ID: the dynamic loader ignores LD_PRELOAD for it,"
                        + " so it cannot be traced")
            }
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        let start = (try? handle.read(upToCount: 2)) ?? Data()
        try? handle.close()
        if start.elementsEqual("#!".utf8) {  // a script: its interpreter gets traced
            isScript = true
            return
        }
        // Not a 64-bit ELF file (ELFFileInfo is nil): let the kernel decide.
        guard let info = ELFFileInfo(path: path) else { return }
        if !info.hasInterpreter {
            throw CommandFailure(
                "\(path) is statically linked: LD_PRELOAD cannot hook its malloc, so malloctrace cannot trace it")
        }
    }
}
