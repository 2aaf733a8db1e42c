import MallocTraceFormat
import MallocTraceReports

/// `check --format json`: the verdict as one document, documented in docs/json-schema.md
/// ("malloctrace check --format json"). Keys are always present; unknown values are `null`.
public enum CheckJSONRenderer {
    public static let schemaVersion: UInt64 = 1

    public static func render(_ verdict: CheckVerdict) -> String {
        JSON.object([
            "schema_version": .unsigned(schemaVersion),
            "verdict": .string(verdict.failed ? "failed" : "passed"),
            "counted_kinds": .array(verdict.countedKinds.sorted(by: >).map { .string($0.description) }),
            "processes": .array(verdict.processes.map(process)),
        ]).renderedOrEmpty()
    }

    static func process(_ process: ProcessVerdict) -> JSON {
        .object([
            "trace": .string(process.tracePath),
            "pid": .optional(process.processID) { .unsigned(UInt64($0)) },
            "executable": .optional(process.executable, JSON.string),
            "arguments": .array(process.arguments.map(JSON.string)),
            "end": .string(process.endDescription),
            "has_leak_scan": .bool(process.hasLeakScan),
            "replaced_by_exec": .bool(process.replacedByExec),
            "ended_before_scan": .bool(process.endedBeforeScan),
            "verdict": .string(process.failed ? "failed" : "passed"),
            "leaked_bytes": .unsigned(process.leakedBytes),
            "leaked_blocks": .unsigned(process.leakedBlocks),
            "peak_bytes": .unsigned(process.peakBytes),
            "allocation_calls": .unsigned(process.allocationCalls),
            "findings": .array(process.findings.map(finding)),
            "uncounted": .array(
                LeakKind.allCases.reversed().compactMap { kind in
                    guard let bytes = process.uncountedBytes[kind] else { return nil }
                    return .object([
                        "kind": .string(kind.description), "bytes": .unsigned(bytes),
                        "blocks": .unsigned(process.uncountedBlocks[kind] ?? 0),
                    ])
                }),
            "suppressions": .array(
                process.suppressions.map { use in
                    .object([
                        "name": .string(use.name), "origin": .string(use.origin),
                        "findings": .unsigned(UInt64(use.findings)), "bytes": .unsigned(use.bytes),
                        "blocks": .unsigned(use.blocks),
                    ])
                }),
            "violations": .array(process.violations.map(violation)),
            "notes": .array(process.notes.map(JSON.string)),
        ])
    }

    static func finding(_ finding: LeakFinding) -> JSON {
        .object([
            "kind": .string(finding.kind.description),
            "rule": .string(CheckText.ruleID(finding.kind)),
            "bytes": .unsigned(finding.bytes),
            "blocks": .unsigned(finding.blocks),
            "allocation_function": .optional(finding.allocationFunction) { .string($0.description) },
            "stack_key": .string(Baseline.stackKey(finding.frames)),
            "frames": .array(finding.frames.map(frame)),
        ])
    }

    static func frame(_ frame: ReportFrame) -> JSON {
        .object([
            "address": .string("0x" + String(frame.address, radix: 16)),
            "function": .optional(frame.function, JSON.string),
            "file": .optional(frame.file, JSON.string),
            "line": .optional(frame.line) { .unsigned(UInt64(max(0, $0))) },
            "module": .optional(frame.module, JSON.string),
            "offset": .optional(frame.offset) { .string("0x" + String($0, radix: 16)) },
            "inlined": .bool(frame.isInlined),
        ])
    }

    static func violation(_ violation: LimitViolation) -> JSON {
        .object([
            "limit": .string(violation.limit.rawValue),
            "rule": .string(CheckText.ruleID(violation.limit)),
            "allowed": .double(violation.allowed),
            "actual": .double(violation.actual),
            "message": .string(violation.message),
            "grown_stacks": .array(
                violation.grownSites.map { site in
                    .object([
                        "key": .string(site.key), "before": .unsigned(site.before), "after": .unsigned(site.after),
                        "frames": .array(site.frames.map(frame)),
                    ])
                }),
        ])
    }
}
