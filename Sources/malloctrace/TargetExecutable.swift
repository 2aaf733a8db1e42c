import Foundation

/// The program `malloctrace run` launches, checked before launch so that tracing cannot silently fail.
struct TargetExecutable {
    let path: String

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
    private func checkPreloadable() throws(CommandFailure) {
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
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 64)) ?? Data()
        if header.starts(with: Array("#!".utf8)) { return }  // a script: its interpreter gets traced
        guard header.count >= 64, header.starts(with: [0x7f, 0x45, 0x4c, 0x46]), header[4] == 2 else {
            return  // not a 64-bit ELF file; let the kernel decide
        }
        func read<T: FixedWidthInteger>(_: T.Type, _ data: Data, at offset: Int) -> T {
            data[offset..<offset + MemoryLayout<T>.size].enumerated().reduce(T(0)) {
                $0 | T($1.element) << (8 * $1.offset)
            }
        }
        let programHeaderOffset = read(UInt64.self, header, at: 32)
        let entrySize = Int(read(UInt16.self, header, at: 54))
        let entryCount = Int(read(UInt16.self, header, at: 56))
        guard entrySize >= 4, entryCount > 0, entryCount < 4096,
            (try? handle.seek(toOffset: programHeaderOffset)) != nil,
            let table = try? handle.read(upToCount: entrySize * entryCount), table.count == entrySize * entryCount
        else { return }
        let interpreterType: UInt32 = 3  // PT_INTERP
        let hasInterpreter = (0..<entryCount).contains {
            read(UInt32.self, table, at: table.startIndex + $0 * entrySize) == interpreterType
        }
        if !hasInterpreter {
            throw CommandFailure(
                "\(path) is statically linked: LD_PRELOAD cannot hook its malloc, so malloctrace cannot trace it")
        }
    }
}
