internal import CMallocTraceDemangle
import Foundation

/// Finds an `llvm-symbolizer` executable: `$MALLOCTRACE_SYMBOLIZER` (a path or a command name; `none`
/// turns symbolization by debug information off), then the one in the Swift toolchain this program runs
/// from (or, when the Swift runtime is linked into it, the toolchain of the `swift` on `PATH`), then
/// `llvm-symbolizer` on `PATH`, then the newest versioned `llvm-symbolizer-N` on `PATH`.
///
/// The toolchain's comes first because it is linked statically: it runs in about 21 MB where Debian's
/// (linked to the shared libLLVM) needs about 74 MB for the same frames, which made the symbolizer, not
/// the report, the largest process of `malloctrace report`.
public enum SymbolizerLocator {
    public static let environmentVariable = "MALLOCTRACE_SYMBOLIZER"

    /// The executable to use, or nil with the reason why none is used.
    public static func locate(environment: [String: String]? = nil) -> (path: String?, note: String?) {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let searchPath = Self.searchPath(environment["PATH"])
        if let chosen = environment[environmentVariable] {
            if chosen.isEmpty || chosen == "none" {
                return (nil, "\(environmentVariable)=\(chosen.isEmpty ? "\"\"" : chosen) turned it off")
            }
            if chosen.contains("/") {
                return isExecutable(chosen)
                    ? (chosen, nil) : (nil, "\(environmentVariable)=\(chosen) is not an executable file")
            }
            if let found = searchPath.map({ $0 + "/" + chosen }).first(where: isExecutable) { return (found, nil) }
            return (nil, "\(environmentVariable)=\(chosen) was not found on PATH")
        }
        if let found = toolchainSymbolizer(searchPath: searchPath) { return (found, nil) }
        if let found = searchPath.map({ $0 + "/llvm-symbolizer" }).first(where: isExecutable) { return (found, nil) }
        if let found = newestVersioned(in: searchPath) { return (found, nil) }
        return (nil, "no llvm-symbolizer on PATH or in the Swift toolchain")
    }

    private static func isExecutable(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && FileManager.default.isExecutableFile(atPath: path)
    }

    /// `llvm-symbolizer-N` with the largest N found in any of `directories`.
    static func newestVersioned(in directories: [String]) -> String? {
        var best: (version: Int, path: String)?
        for directory in directories {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
            for name in names where name.hasPrefix("llvm-symbolizer-") {
                guard let version = Int(name.dropFirst("llvm-symbolizer-".count)) else { continue }
                let path = directory + "/" + name
                if version > (best?.version ?? -1) && isExecutable(path) { best = (version, path) }
            }
        }
        return best?.path
    }

    /// `<toolchain>/usr/bin/llvm-symbolizer`, found from the Swift runtime library this process loaded
    /// (`<toolchain>/usr/lib/swift/linux/libswiftCore.so`); in a program with the runtime linked in
    /// (`swift build --static-swift-stdlib`, as the README builds the CLI), next to the `swift` found on
    /// `searchPath` once its symbolic links are resolved.
    public static func toolchainSymbolizer(searchPath: [String]? = nil) -> String? {
        toolchainSymbolizer(
            runtimeLibrary: loadedSwiftRuntime(),
            searchPath: searchPath ?? Self.searchPath(ProcessInfo.processInfo.environment["PATH"]))
    }

    static func toolchainSymbolizer(runtimeLibrary: String?, searchPath: [String]) -> String? {
        var binDirectories: [URL] = []
        // `dladdr` names the program itself when the runtime is linked in.
        if let runtimeLibrary, runtimeLibrary.hasSuffix("/libswiftCore.so") {
            binDirectories.append(
                URL(fileURLWithPath: runtimeLibrary).resolvingSymlinksInPath().deletingLastPathComponent()
                    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent("bin"))
        }
        if let swift = searchPath.map({ $0 + "/swift" }).first(where: isExecutable) {
            binDirectories.append(URL(fileURLWithPath: swift).resolvingSymlinksInPath().deletingLastPathComponent())
        }
        return binDirectories.map { $0.appendingPathComponent("llvm-symbolizer").path }.first(where: isExecutable)
    }

    /// The file `swift_demangle` comes from: libswiftCore.so, or this program when the runtime is linked in.
    private static func loadedSwiftRuntime() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard mt_swift_runtime_path(&buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The directories of `PATH` (a shell's default when it is unset).
    private static func searchPath(_ path: String?) -> [String] {
        (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
    }
}
