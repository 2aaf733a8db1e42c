import Foundation
import MallocTraceAnalysis
import MallocTraceFormat

/// Renders a ``Report`` as JSON. The schema is documented in docs/json-schema.md; field names are stable
/// and `schema_version` changes whenever one is removed or changes meaning.
public enum JSONRenderer {
    public static let schemaVersion = 1

    public static func render(_ report: Report) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(Document(report))
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private struct Document: Encodable {
        var schema_version = JSONRenderer.schemaVersion
        var trace: Trace
        var summary: Summary
        var leaks: [Site]
        var peak_contributors: [Site]

        init(_ report: Report) {
            trace = Trace(report)
            summary = Summary(report)
            leaks = report.leaks.map(Site.init)
            peak_contributors = report.peakContributors.map(Site.init)
        }
    }

    private struct Trace: Encodable {
        var path: String
        var pid: UInt32?
        var executable: String?
        var arguments: [String]
        var truncated: Bool
        var end_reason: String
        var exit_status: Int32?
        var duration_ns: UInt64
        var diagnostics: [String]

        init(_ report: Report) {
            path = report.tracePath
            pid = report.process?.pid
            executable = report.process?.executable
            arguments = report.process?.arguments ?? []
            truncated = report.isTruncated
            switch report.end?.reason {
            case .normalExit: end_reason = "exit"
            case .underscoreExit(let status):
                end_reason = "_exit"
                exit_status = status
            case .exec: end_reason = "exec"
            case .unknown: end_reason = "unknown"
            case nil: end_reason = "none"
            }
            duration_ns = report.end?.time ?? report.summary.lastEventTime
            diagnostics = report.diagnostics
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(path, forKey: .path)
            try container.encode(pid, forKey: .pid)
            try container.encode(executable, forKey: .executable)
            try container.encode(arguments, forKey: .arguments)
            try container.encode(truncated, forKey: .truncated)
            try container.encode(end_reason, forKey: .end_reason)
            try container.encode(exit_status, forKey: .exit_status)
            try container.encode(duration_ns, forKey: .duration_ns)
            try container.encode(diagnostics, forKey: .diagnostics)
        }

        enum CodingKeys: String, CodingKey {
            case path, pid, executable, arguments, truncated, end_reason, exit_status, duration_ns, diagnostics
        }
    }

    private struct Summary: Encodable {
        var allocation_calls: UInt64
        var failed_calls: UInt64
        var free_calls: UInt64
        var calls_by_function: [String: UInt64]
        var bytes_allocated: UInt64
        var peak_bytes: UInt64
        var peak_blocks: UInt64
        var peak_time_ns: UInt64
        var leaked_bytes: UInt64
        var leaked_blocks: UInt64
        var unmatched_frees: UInt64
        var threads: Int
        var truncated: Bool

        init(_ report: Report) {
            let summary = report.summary
            allocation_calls = summary.allocationCalls
            failed_calls = summary.failedCalls
            free_calls = summary.freeCalls
            calls_by_function = Dictionary(
                uniqueKeysWithValues: summary.callsByFunction.map { ($0.key.description, $0.value) })
            bytes_allocated = summary.bytesAllocated
            peak_bytes = summary.peakBytes
            peak_blocks = summary.peakBlocks
            peak_time_ns = summary.peakTime
            leaked_bytes = summary.leakedBytes
            leaked_blocks = summary.leakedBlocks
            unmatched_frees = summary.unmatchedFrees
            threads = summary.threadCount
            truncated = report.isTruncated
        }
    }

    private struct Site: Encodable {
        var bytes: UInt64
        var blocks: UInt64
        var allocation_calls: UInt64
        var stack_id: UInt32
        var stack: [Frame]

        init(_ site: ReportSite) {
            bytes = site.bytes
            blocks = site.blocks
            allocation_calls = site.allocationCalls
            stack_id = site.stackID
            stack = site.stack.map(Frame.init)
        }
    }

    /// Every key is always present (null when unknown), so consumers need no existence checks.
    private struct Frame: Encodable {
        var frame: ReportFrame

        init(_ frame: ReportFrame) { self.frame = frame }

        enum CodingKeys: String, CodingKey { case address, module, offset, function, file, line, inlined }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode("0x" + String(frame.address, radix: 16), forKey: .address)
            try container.encode(frame.module, forKey: .module)
            try container.encode(frame.offset.map { "0x" + String($0, radix: 16) }, forKey: .offset)
            try container.encode(frame.function, forKey: .function)
            try container.encode(frame.file, forKey: .file)
            try container.encode(frame.line, forKey: .line)
            try container.encode(false, forKey: .inlined)
        }
    }
}
