import Foundation
import PackagePlugin

/// Compiles native code with the toolchain's compilers for the targets that need artifacts SwiftPM cannot make:
///
/// - `malloctrace`: `libmalloctrace.so` from `Sources/MallocTracePreload`. A SwiftPM dynamic library would
///   link the Swift runtime (`NEEDED libswiftCore.so`), which must never be loaded into a traced program;
///   clang alone gives a .so that needs only libc and libunwind.
/// - `IntegrationTests`: the deterministic programs the tests trace, from `Tests/Fixtures` (see its README):
///   `NAME.c` / `NAME.cpp` → `fixture-NAME` (-O0 -g), `NAME-O2.c` → -O2 -g, `NAME-stripped.c` → stripped
///   and -rdynamic, `libNAME.c` → the shared library `fixture-libNAME.so`, `NAME.swift` → swiftc -Onone -g,
///   and `static.c` linked statically on purpose. A program listed in `linkedLibraries` is linked against its
///   `fixture-libNAME.so` (found next to it at run time): constructors of linked libraries run before the
///   tracer's own, which dlopen cannot reproduce.
///
/// Outputs land in the target's resource bundle.
@main
struct BuildPreloadLibrary: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let root = context.package.directoryURL
        let formatHeaders = root.appending(path: "Sources/CMallocTraceFormat/include")
        switch target.name {
        case "malloctrace":
            return [try preloadLibraryCommand(context: context, root: root, formatHeaders: formatHeaders)]
        case "IntegrationTests":
            return try fixtureCommands(context: context, root: root)
        default:
            return []
        }
    }

    private func files(in directory: URL, extensions: Set<String>) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { extensions.contains($0.pathExtension) }
            .sorted { $0.path < $1.path }
    }

    private func preloadLibraryCommand(context: PluginContext, root: URL, formatHeaders: URL) throws -> Command {
        let clang = try context.tool(named: "clang")
        let sourceDirectory = root.appending(path: "Sources/MallocTracePreload")
        let sources = try files(in: sourceDirectory, extensions: ["c"])
        let inputs =
            try files(in: sourceDirectory, extensions: ["c", "h", "def", "map"])
            + files(in: formatHeaders, extensions: ["h"])
        let output = context.pluginWorkDirectoryURL.appending(path: "libmalloctrace.so")
        var arguments = [
            "-shared", "-fPIC", "-O2", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration",
            "-fvisibility=hidden", "-ftls-model=initial-exec", "-fno-omit-frame-pointer",
            "-I", formatHeaders.path,
        ]
        arguments += sources.map(\.path)
        arguments += [
            "-Wl,-z,nodelete", "-Wl,--as-needed",
            "-Wl,--version-script=" + sourceDirectory.appending(path: "exports.map").path,
            "-lunwind", "-o", output.path,
        ]
        return .buildCommand(
            displayName: "Compiling libmalloctrace.so",
            executable: clang.url,
            arguments: arguments,
            inputFiles: inputs,
            outputFiles: [output]
        )
    }

    /// Fixture programs that link a fixture library at build time.
    private let linkedLibraries = ["hostile": "libatfork"]

    private func fixtureCommands(context: PluginContext, root: URL) throws -> [Command] {
        let clang = try context.tool(named: "clang")
        let fixtureDirectory = root.appending(path: "Tests/Fixtures")
        return try files(in: fixtureDirectory, extensions: ["c", "cpp", "swift"]).map { source in
            let base = source.deletingPathExtension().lastPathComponent
            let isLibrary = base.hasPrefix("lib")
            let name = "fixture-" + base + (isLibrary ? ".so" : "")
            let output = context.pluginWorkDirectoryURL.appending(path: name)
            if source.pathExtension == "swift" {
                return .buildCommand(
                    displayName: "Compiling test fixture \(name)",
                    executable: try context.tool(named: "swiftc").url,
                    arguments: ["-Onone", "-g", "-module-name", "Fixture", source.path, "-o", output.path],
                    inputFiles: [source],
                    outputFiles: [output]
                )
            }
            let isCPlusPlus = source.pathExtension == "cpp"
            // -O0 keeps every allocation site a call of its own; -fno-builtin keeps malloc/free pairs.
            // A build-id, as distributions' toolchains add, lets reports notice a rebuilt fixture.
            var arguments = ["-fno-builtin", "-fno-omit-frame-pointer", "-pthread", "-Wall", "-Wl,--build-id"]
            // malloctrace.h, for the fixtures that use the control API.
            arguments += ["-I", root.appending(path: "Sources/CMallocTraceAPI/include").path]
            if base.hasSuffix("-O2") {
                arguments += ["-O2", "-g"]
            } else if base.hasSuffix("-stripped") {
                arguments += ["-O0", "-s", "-rdynamic"]
            } else {
                arguments += ["-O0", "-g"]
            }
            if isLibrary { arguments += ["-shared", "-fPIC"] }
            arguments += isCPlusPlus ? ["-x", "c++", "-std=c++17"] : ["-std=gnu11"]
            arguments += [source.path, "-o", output.path]
            var inputs = [source]
            if let library = linkedLibraries[base] {
                let file = "fixture-\(library).so"
                inputs.append(context.pluginWorkDirectoryURL.appending(path: file))
                arguments += [
                    "-L", context.pluginWorkDirectoryURL.path, "-l:\(file)", "-Wl,-rpath,$ORIGIN",
                ]
            }
            if isCPlusPlus { arguments += ["-lstdc++", "-lm"] }
            // The fixture named `static` must be statically linked: it is the untraceable case.
            if name == "fixture-static" { arguments.append("-static") }
            return .buildCommand(
                displayName: "Compiling test fixture \(name)",
                executable: clang.url,
                arguments: arguments,
                inputFiles: inputs,
                outputFiles: [output]
            )
        }
    }
}
