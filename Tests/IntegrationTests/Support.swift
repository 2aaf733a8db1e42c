import Foundation
import Testing

/// Paths of the built CLI, preload library and fixtures: all next to the test bundle in the build folder.
enum Products {
    static let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    static let cli = directory.appendingPathComponent("malloctrace").path
    static let preloadLibrary = directory.appendingPathComponent("malloctrace_malloctrace.resources/libmalloctrace.so")
        .path

    static func fixture(_ name: String) -> String {
        directory.appendingPathComponent("malloctrace_IntegrationTests.resources/fixture-\(name)").path
    }
}

struct ProcessResult {
    var status: Int32
    /// The signal that ended the process, if one did.
    var signal: Int32?
    var stdout: String
    var stderr: String
}

/// Runs a program to completion (killed after `timeout` seconds), capturing its output.
func runProgram(
    _ path: String, _ arguments: [String], environment extra: [String: String] = [:],
    removing: [String] = [], directory: URL? = nil, timeout: Double = 60
) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for name in removing { environment[name] = nil }
    environment.merge(extra) { $1 }
    process.environment = environment
    if let directory { process.currentDirectoryURL = directory }
    let stdout = Pipe(), stderr = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    process.standardInput = FileHandle.nullDevice
    try withSignalsUnblocked { try process.run() }
    let timer = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
    // Both pipes are drained at once: a child that fills one while the other is read would wait forever.
    let errorsRead = DispatchGroup()
    nonisolated(unsafe) var errors = Data()
    DispatchQueue.global().async(group: errorsRead) { errors = stderr.fileHandleForReading.readDataToEndOfFile() }
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    errorsRead.wait()
    process.waitUntilExit()
    timer.cancel()
    let signaled = process.terminationReason == .uncaughtSignal
    return ProcessResult(
        status: process.terminationStatus, signal: signaled ? process.terminationStatus : nil,
        stdout: String(decoding: output, as: UTF8.self), stderr: String(decoding: errors, as: UTF8.self))
}

/// Runs `body` (which starts a child process) with no signal blocked in the calling thread. Tests run on
/// Dispatch worker threads, which block every asynchronous signal, and a child inherits its parent thread's
/// mask: without this, a fixture would never see SIGALRM, and SIGXFSZ would not kill it as it would kill a
/// program started from a shell.
func withSignalsUnblocked<Result>(_ body: () throws -> Result) rethrows -> Result {
    var none = sigset_t()
    var saved = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, &saved)
    defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
    return try body()
}

/// A fresh directory per test, removed afterwards.
final class Scratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("malloctrace-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// Traces `fixture pattern` with `malloctrace run` and returns the run's result and the trace path.
func traceFixture(
    _ fixture: String, _ arguments: [String], in scratch: Scratch, depth: Int? = nil, options: [String] = [],
    environment: [String: String] = [:]
) throws -> (ProcessResult, String) {
    let trace = scratch.path("\(fixture)-\(arguments.joined(separator: "-"))-\(UUID().uuidString.prefix(8)).mtrace")
    var cliArguments = ["run", "-o", trace] + options
    if let depth { cliArguments += ["--depth", String(depth)] }
    let result = try runProgram(
        Products.cli, cliArguments + ["--", Products.fixture(fixture)] + arguments, environment: environment)
    return (result, trace)
}

/// `malloctrace report --format json` of a trace, parsed.
func jsonReport(
    _ trace: String, top: Int = 10, arguments: [String] = [], environment: [String: String] = [:]
) throws -> [String: Any] {
    let result = try runProgram(
        Products.cli, ["report", trace, "--format", "json", "--top", String(top)] + arguments, environment: environment)
    #expect(result.status == 0, "report failed: \(result.stderr)")
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    return try #require(object as? [String: Any])
}

/// Traces a fixture program with the preload library directly (not through `malloctrace run`).
func traceProgram(_ path: String, _ arguments: [String] = [], in scratch: Scratch) throws -> String {
    let trace = scratch.path("\(URL(fileURLWithPath: path).lastPathComponent)-\(UUID().uuidString.prefix(8)).mtrace")
    let result = try runProgram(
        path, arguments, environment: ["LD_PRELOAD": Products.preloadLibrary, "MALLOCTRACE_OUTPUT": trace])
    #expect(result.status == 0, "\(path) failed: \(result.stderr)")
    return trace
}

/// The 1-based line of the fixture source line that carries `MARK:name`.
func markedLine(_ name: String, in fixture: String) throws -> Int {
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/\(fixture)")
    let lines = try String(contentsOf: source, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
    let index = try #require(lines.firstIndex { $0.contains("MARK:\(name) ") || $0.hasSuffix("MARK:\(name)") })
    return index + 1
}

extension Dictionary where Key == String, Value == Any {
    func object(_ key: String) -> [String: Any] { self[key] as? [String: Any] ?? [:] }
    func objects(_ key: String) -> [[String: Any]] { self[key] as? [[String: Any]] ?? [] }
    func integer(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
    func string(_ key: String) -> String? { self[key] as? String }
}

/// The innermost frame's function name of a leak or peak site.
func topFunction(_ site: [String: Any]) -> String? {
    site.objects("stack").first?["function"] as? String
}

/// The function names of a site's frames, innermost first (nil for unresolved frames).
func functions(_ site: [String: Any]) -> [String?] {
    site.objects("stack").map { $0["function"] as? String }
}

/// A version 1 trace written byte by byte, for inputs no program writes: a PROCESS record, then chunks and END.
struct CraftedTrace {
    private(set) var data = Data("MTRACE\u{1a}\n".utf8)

    init(executable: String = "/bin/crafted", arguments: [String] = ["crafted"]) {
        data.append(contentsOf: Self.little(UInt16(1)) + Self.little(UInt16(16)) + Self.little(UInt32(0)))
        let exe = Array(executable.utf8)
        let argv = arguments.flatMap { (argument: String) -> [UInt8] in Array(argument.utf8) + [0] }
        var process = Self.little(UInt32(4_000_000)) + Self.little(UInt32(1)) + Self.little(UInt64(0))
        process += Self.little(UInt64(0)) + Self.little(UInt32(4096)) + Self.little(UInt32(64)) + Self.little(UInt32(0))
        process += Self.little(UInt32(exe.count)) + Self.little(UInt32(argv.count)) + Self.little(UInt32(0))
        record(1, process + exe + argv)
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var bytes: [UInt8] = []
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        return bytes + [UInt8(value)]
    }

    static func little<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    mutating func record(_ kind: UInt8, _ payload: [UInt8]) {
        data.append(contentsOf: [kind, 0, 0, 0] + Self.little(UInt32(payload.count)))
        data.append(contentsOf: payload)
        data.append(contentsOf: [UInt8](repeating: 0, count: (8 - payload.count % 8) % 8))
    }

    /// A CHUNK record of `thread` holding `events` (version 1 event bytes).
    mutating func chunk(thread: UInt32, events: [UInt8]) {
        record(2, Self.little(thread) + Self.little(UInt32(events.count)) + events)
    }

    mutating func end(time: UInt64, lastSequence: UInt64) {
        record(3, Self.little(time) + Self.little(lastSequence) + Self.little(Int32(-1)) + Self.little(UInt32(0)))
    }
}
