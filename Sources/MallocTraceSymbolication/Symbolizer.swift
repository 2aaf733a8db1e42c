import Foundation

/// A return address in a module of the traced process, as the trace recorded it.
public struct ModuleAddress: Hashable, Sendable {
    /// Path of the module when it was loaded.
    public var module: String
    /// Its GNU build-id from the trace (empty if it had none): checked against the file found on disk.
    public var buildID: [UInt8]
    /// The return address minus the module's load bias. Symbolization looks up `offset - 1`, the call.
    public var offset: UInt64

    public init(module: String, buildID: [UInt8], offset: UInt64) {
        self.module = module
        self.buildID = buildID
        self.offset = offset
    }
}

/// What symbolization found for one address.
public struct Symbolication: Sendable, Equatable {
    /// Innermost first: calls inlined at the address, then the function that contains it. Empty when nothing
    /// is known; a frame may have a name without file and line (from a symbol table).
    public var frames: [SourceFrame]
    /// Why nothing, or only a name, was found; nil when file and line are known.
    public var problem: String?

    public init(frames: [SourceFrame], problem: String? = nil) {
        self.frames = frames
        self.problem = problem
    }

    public var isResolved: Bool { frames.contains { $0.function != nil } }
}

/// Resolves return addresses to functions, files, lines and inlined calls, offline, from the files of the
/// modules named in the trace.
///
/// The backend is one long-lived `llvm-symbolizer` (see ``SymbolizerLocator``), which also finds separate
/// debug files; without one, or for what it cannot name, function names come from the modules' ELF symbol
/// tables (or their debug files' `.symtab`). A module whose file is gone or was rebuilt since the trace
/// (its build-id differs) is symbolized from `/usr/lib/debug/.build-id/…` when that exists. Results are
/// cached: each address is resolved at most once per symbolizer.
public final class Symbolizer {
    public enum Backend: Sendable {
        /// Find llvm-symbolizer as ``SymbolizerLocator`` does.
        case automatic
        /// This llvm-symbolizer executable.
        case llvmSymbolizer(path: String)
        /// Symbol tables only: names, no file and line.
        case symbolTables
    }

    private struct PreparedModule {
        var path = ""
        /// The file to read: the module itself or a debug file with the same build-id.
        var file: String?
        var problem: String?
        var table: ELFSymbolTable??
    }

    private var process: LLVMSymbolizer?
    private var processFailure: String?
    private let locatorNote: String?
    /// By path and build-id: a path rebuilt between two traces is two modules.
    private var modules: [String: PreparedModule] = [:]
    private var cache: [ModuleAddress: Symbolication] = [:]
    let debugFiles: DebugFiles

    /// Path of the llvm-symbolizer in use, if any.
    public private(set) var symbolizerPath: String?
    /// When the traced process started (nanoseconds since the Unix epoch). A module file without a build-id
    /// that was modified after this moment is not trusted: it is probably a rebuild.
    public var traceStart: UInt64?

    public init(backend: Backend = .automatic, debugFiles: DebugFiles = DebugFiles()) {
        self.debugFiles = debugFiles
        switch backend {
        case .automatic:
            (symbolizerPath, locatorNote) = SymbolizerLocator.locate()
        case .llvmSymbolizer(let path):
            (symbolizerPath, locatorNote) = (path, nil)
        case .symbolTables:
            (symbolizerPath, locatorNote) = (nil, "symbol tables were asked for")
        }
    }

    /// How frames are resolved, in words, for the report's notes.
    public var backendDescription: String {
        if let processFailure { return "symbol tables only (llvm-symbolizer failed: \(processFailure))" }
        if let symbolizerPath { return "llvm-symbolizer (\(symbolizerPath))" }
        return "symbol tables only, names without file and line (\(locatorNote ?? "no llvm-symbolizer"))"
    }

    /// True while file and line information can be had (an llvm-symbolizer is available and working).
    public var hasDebugInfoBackend: Bool { symbolizerPath != nil && processFailure == nil }

    /// Starts llvm-symbolizer now, if there is one, so that its own start-up (tens of milliseconds)
    /// overlaps what the caller does before its first batch. A failure is kept, as a batch would keep it.
    public func startProcess() {
        guard symbolizerPath != nil, processFailure == nil else { return }
        do throws(LLVMSymbolizer.Failure) {
            _ = try runningProcess()
        } catch {
            processFailure = error.description
        }
    }

    /// The cached result for `address`, symbolizing it now if needed.
    public func symbolicate(_ address: ModuleAddress) -> Symbolication {
        if let cached = cache[address] { return cached }
        symbolicate([address])
        return cache[address] ?? Symbolication(frames: [])
    }

    /// Resolves all of `addresses` not resolved yet, in one batch; read the results with
    /// ``symbolicate(_:)-(ModuleAddress)``. `progress` is called now and then with (done, total).
    public func symbolicate(_ addresses: [ModuleAddress], progress: ((Int, Int) -> Void)? = nil) {
        var pending: [ModuleAddress] = []
        var seen = Set<ModuleAddress>()
        for address in addresses where cache[address] == nil && seen.insert(address).inserted {
            pending.append(address)
        }
        guard !pending.isEmpty else { return }
        var viaProcess: [(address: ModuleAddress, file: String)] = []
        for address in pending {
            let module = prepare(address.module, buildID: address.buildID)
            guard let file = module.file, address.offset > 0 else {
                cache[address] = Symbolication(frames: [], problem: module.problem ?? "address 0")
                continue
            }
            if symbolizerPath != nil && processFailure == nil && LLVMSymbolizer.request(module: file, address: 0) != nil
            {
                viaProcess.append((address, file))
            } else {
                cache[address] = fromSymbolTable(address)
            }
        }
        guard !viaProcess.isEmpty else { return }
        var answered = 0
        do {
            let process = try runningProcess()
            try process.symbolize(viaProcess.map { ($0.file, $0.address.offset - 1) }) { index, answer in
                let address = viaProcess[index].address
                answered = index + 1
                if answered % 4096 == 0 { progress?(answered, viaProcess.count) }
                switch answer {
                case .success(let frames) where frames.last?.function != nil:
                    cache[address] = Symbolication(
                        frames: frames, problem: frames.contains { $0.file != nil } ? nil : "no debug information")
                case .success(let frames):
                    // llvm-symbolizer found no function (it skips some .dynsym entries): try the symbol table,
                    // keeping any file and line it did find.
                    var result = fromSymbolTable(address)
                    if let outer = frames.last, outer.file != nil, let name = result.frames.first?.function {
                        result = Symbolication(
                            frames: frames.dropLast() + [
                                SourceFrame(function: name, file: outer.file, line: outer.line)
                            ])
                    }
                    cache[address] = result
                case .failure(let failure):
                    var result = fromSymbolTable(address)
                    if !result.isResolved { result.problem = failure.description }
                    cache[address] = result
                }
            }
        } catch {
            processFailure = error.description
            process?.stop()
            process = nil
            for (address, _) in viaProcess[answered...] where cache[address] == nil {
                cache[address] = fromSymbolTable(address)
            }
        }
        progress?(viaProcess.count, viaProcess.count)
    }

    private func runningProcess() throws(LLVMSymbolizer.Failure) -> LLVMSymbolizer {
        if let process, process.isRunning { return process }
        guard let symbolizerPath else { throw LLVMSymbolizer.Failure(description: "no llvm-symbolizer") }
        let started = try LLVMSymbolizer(path: symbolizerPath)
        process = started
        return started
    }

    /// Names only, from the ELF symbol table of the module's file (or its debug file's when stripped).
    private func fromSymbolTable(_ address: ModuleAddress) -> Symbolication {
        guard let table = symbolTable(for: address.module, buildID: address.buildID) else {
            let problem = prepare(address.module, buildID: address.buildID).problem
            return Symbolication(frames: [], problem: problem ?? "no symbol table")
        }
        guard let found = table.function(containing: address.offset - 1) else {
            let reason =
                table.isDynamicOnly
                ? "the file is stripped and no debug file was found" : "no symbol covers the address"
            return Symbolication(frames: [], problem: reason)
        }
        return Symbolication(
            frames: [SourceFrame(function: Demangler.demangle(found.name))],
            problem: hasDebugInfoBackend ? "no debug information" : "names only (no llvm-symbolizer)")
    }

    private func symbolTable(for path: String, buildID: [UInt8]) -> ELFSymbolTable? {
        var module = prepare(path, buildID: buildID)
        if let table = module.table { return table }
        var table = module.file.flatMap(ELFSymbolTable.init(path:))
        if let found = table, found.isDynamicOnly, let file = module.file {
            // A stripped file: its debug file (by build-id, else by .gnu_debuglink) has the full .symtab.
            let debugFile =
                debugFiles.file(buildID: found.info.buildID)
                ?? found.info.debugLink.flatMap {
                    debugFiles.file(linkedFrom: file, link: $0, buildID: found.info.buildID)
                }
            if let debugTable = debugFile.flatMap(ELFSymbolTable.init(path:)), !debugTable.isDynamicOnly {
                table = debugTable
            }
        }
        module.table = .some(table)
        modules[Self.key(path, buildID)] = module
        return table
    }

    private static func key(_ path: String, _ buildID: [UInt8]) -> String {
        path + "\u{0}" + buildID.map { String($0) }.joined(separator: ",")
    }

    private func prepare(_ path: String, buildID: [UInt8]) -> PreparedModule {
        if let module = modules[Self.key(path, buildID)] { return module }
        var module = PreparedModule()
        if let info = ELFFileInfo(path: path) {
            if !buildID.isEmpty && !info.buildID.isEmpty && info.buildID != buildID {
                module.file = debugFiles.file(buildID: buildID)
                if module.file == nil {
                    module.problem = "the file changed after the trace was recorded (its build-id differs)"
                }
            } else if buildID.isEmpty || info.buildID.isEmpty, let modified = modificationTime(path),
                let traceStart, modified > traceStart
            {
                module.problem = "the file changed after the trace was recorded (and has no build-id to check)"
            } else {
                module.file = path
            }
        } else if let debugFile = debugFiles.file(buildID: buildID) {
            module.file = debugFile
        } else {
            module.problem =
                !FileManager.default.fileExists(atPath: path)
                ? "the file is gone" : ELFFile.isRegularFile(path) ? "not a readable ELF file" : "not a regular file"
        }
        module.path = path
        modules[Self.key(path, buildID)] = module
        return module
    }

    private func modificationTime(_ path: String) -> UInt64? {
        guard let date = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
            date.timeIntervalSince1970 > 0
        else { return nil }
        return UInt64(date.timeIntervalSince1970 * 1e9)
    }

    /// Modules that could not be read at all, with the reason, for the report's notes.
    public var moduleProblems: [(module: String, problem: String)] {
        modules.values.compactMap { module in module.problem.map { (module.path, $0) } }
            .sorted { $0.module < $1.module }
    }
}
