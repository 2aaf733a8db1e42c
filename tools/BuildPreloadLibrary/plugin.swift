import Foundation
import PackagePlugin

/// Compiles C with the toolchain's clang for the targets that need native artifacts SwiftPM cannot make:
///
/// - `malloctrace`: `libmalloctrace.so` from `Sources/MallocTracePreload`. A SwiftPM dynamic library would
///   link the Swift runtime (`NEEDED libswiftCore.so`), which must never be loaded into a traced program;
///   clang alone gives a .so that needs only libc and libunwind.
/// - `IntegrationTests`: one executable `fixture-NAME` per `Tests/Fixtures/NAME.c` (or `.cpp`), the
///   deterministic programs the tests trace (`static.c` is linked statically on purpose), and one shared
///   library `libfixture-NAME.so` per `Tests/Fixtures/NAME.so.c`, for fixtures that `dlopen` it.
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

    private func fixtureCommands(context: PluginContext, root: URL) throws -> [Command] {
        let clang = try context.tool(named: "clang")
        let fixtureDirectory = root.appending(path: "Tests/Fixtures")
        return try files(in: fixtureDirectory, extensions: ["c", "cpp"]).map { source in
            // NAME.so.c becomes libfixture-NAME.so (its path extension is "c" too: test the whole suffix).
            let stem = source.deletingPathExtension().lastPathComponent
            let isLibrary = stem.hasSuffix(".so")
            let name = isLibrary ? "libfixture-" + stem : "fixture-" + stem
            let output = context.pluginWorkDirectoryURL.appending(path: name)
            let isCPlusPlus = source.pathExtension == "cpp"
            // -O0 keeps every allocation site a call of its own; -fno-builtin keeps malloc/free pairs.
            var arguments = ["-O0", "-g", "-fno-builtin", "-fno-omit-frame-pointer", "-pthread", "-Wall"]
            arguments += isCPlusPlus ? ["-x", "c++", "-std=c++17"] : ["-std=gnu11"]
            if isLibrary { arguments += ["-shared", "-fPIC", "-fvisibility=hidden"] }
            arguments += [source.path, "-o", output.path]
            if isCPlusPlus { arguments += ["-lstdc++", "-lm"] }
            // The fixture named `static` must be statically linked: it is the untraceable case.
            if name == "fixture-static" { arguments.append("-static") }
            return .buildCommand(
                displayName: "Compiling test fixture \(name)",
                executable: clang.url,
                arguments: arguments,
                inputFiles: [source],
                outputFiles: [output]
            )
        }
    }
}
