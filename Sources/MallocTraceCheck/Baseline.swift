import Foundation
public import MallocTraceReports

/// Figures of a run that later runs are compared with (`--save-baseline`, `--baseline`).
///
/// The file is JSON, documented in docs/ci.md: `{"malloctrace_baseline": 1, "processes": [...]}`, each
/// process with its executable, arguments, `peak_bytes`, `leaked_bytes`, `leaked_blocks`,
/// `allocation_calls` and `stacks` (`key`, `frames` as display text, `peak_bytes`, `leaked_bytes`,
/// `allocation_calls`). A stack's key is ``stackKey(_:)``: it survives rebuilds, not renamed functions.
public struct Baseline: Sendable, Equatable, Codable {
    /// The file format version this build writes and the newest it reads.
    public static let version = 1

    /// One process's figures.
    public struct Process: Sendable, Equatable, Codable {
        public var executable: String?
        public var arguments: [String]
        public var peakBytes: UInt64
        public var leakedBytes: UInt64
        public var leakedBlocks: UInt64
        public var allocationCalls: UInt64
        public var stacks: [Stack]

        enum CodingKeys: String, CodingKey {
            case executable, arguments, stacks
            case peakBytes = "peak_bytes"
            case leakedBytes = "leaked_bytes"
            case leakedBlocks = "leaked_blocks"
            case allocationCalls = "allocation_calls"
        }

        /// What pairs a process with its baseline: the executable's file name and the arguments after
        /// argv[0] (which names the program by whatever path it was started with).
        public var identity: String {
            ([executable.map { $0.split(separator: "/").last.map(String.init) ?? $0 } ?? "?"] + arguments.dropFirst())
                .joined(separator: "\u{0}")
        }
    }

    /// One stack's figures.
    public struct Stack: Sendable, Equatable, Codable {
        public var key: String
        /// The frames' display text, for people reading the file.
        public var frames: [String]
        public var peakBytes: UInt64
        public var leakedBytes: UInt64
        public var allocationCalls: UInt64

        enum CodingKeys: String, CodingKey {
            case key, frames
            case peakBytes = "peak_bytes"
            case leakedBytes = "leaked_bytes"
            case allocationCalls = "allocation_calls"
        }
    }

    public var processes: [Process]

    enum CodingKeys: String, CodingKey {
        case version = "malloctrace_baseline"
        case processes
    }

    public init(processes: [Process]) {
        self.processes = processes
    }

    /// The figures of every process of `verdict`; stacks sorted by key so files diff well.
    public init(_ verdict: CheckVerdict) {
        processes = verdict.processes.map(Self.figures)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let found = try container.decode(Int.self, forKey: .version)
        guard found <= Self.version else { throw VersionError(found: found) }
        processes = try container.decode([Process].self, forKey: .processes)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.version, forKey: .version)
        try container.encode(processes, forKey: .processes)
    }

    struct VersionError: Error { var found: Int }

    /// The identity of a stack across traces: each frame's ``ReportFrame/matchKey``, joined by newlines.
    public static func stackKey(_ frames: [ReportFrame]) -> String {
        frames.map(\.matchKey).joined(separator: "\n")
    }

    static func figures(_ process: ProcessVerdict) -> Process {
        var stacks: [String: Stack] = [:]
        for stack in process.stacks {
            var entry =
                stacks[stack.key]
                ?? Stack(
                    key: stack.key, frames: stack.frames.map(\.displayName), peakBytes: 0, leakedBytes: 0,
                    allocationCalls: 0)
            entry.peakBytes &+= stack.peakBytes
            entry.allocationCalls &+= stack.allocationCalls
            stacks[stack.key] = entry
        }
        for finding in process.findings {
            let key = stackKey(finding.frames)
            var entry =
                stacks[key]
                ?? Stack(
                    key: key, frames: finding.frames.map(\.displayName), peakBytes: 0, leakedBytes: 0,
                    allocationCalls: 0)
            entry.leakedBytes &+= finding.bytes
            stacks[key] = entry
        }
        return Process(
            executable: process.executable, arguments: process.arguments, peakBytes: process.peakBytes,
            leakedBytes: process.leakedBytes, leakedBlocks: process.leakedBlocks,
            allocationCalls: process.allocationCalls, stacks: stacks.values.sorted { $0.key < $1.key })
    }

    // MARK: Files

    /// Writes the baseline as pretty JSON with sorted keys.
    public func save(toPath path: String) throws(CheckError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            var data = try encoder.encode(self)
            data.append(UInt8(ascii: "\n"))
            try OutputFile.write(data, toPath: path)
        } catch {
            throw .unwritableFile(path: path, reason: SuppressionParser.reasonText(error))
        }
    }

    /// Reads a baseline written by ``save(toPath:)``.
    public static func load(fromPath path: String) throws(CheckError) -> Baseline {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadableFile(path: path, reason: SuppressionParser.reasonText(error))
        }
        do {
            return try JSONDecoder().decode(Baseline.self, from: data)
        } catch let error as VersionError {
            throw .unsupportedBaselineVersion(path: path, found: error.found, supported: version)
        } catch let DecodingError.keyNotFound(key, context) {
            throw .invalidBaseline(path: path, reason: "missing '\(codingPath(context.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, context) {
            throw .invalidBaseline(path: path, reason: "wrong type at '\(codingPath(context.codingPath))'")
        } catch {
            throw .invalidBaseline(path: path, reason: "not valid JSON")
        }
    }

    static func codingPath(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined().trimmingPrefix(".").description
    }
}
