import Foundation
import MallocTraceAnalysis
import MallocTraceFormat

/// Renders a ``Report`` as JSON. The schema is documented in docs/json-schema.md; field names are stable
/// and `schema_version` changes whenever one is removed or changes meaning.
public enum JSONRenderer {
    public static let schemaVersion = 2

    /// JSON keys of the site sections.
    static let siteKeys: [ReportSection: String] = [
        .peak: "peak_contributors", .allocations: "most_allocation_calls", .bytes: "most_bytes_allocated",
        .temporary: "most_temporary_allocations", .leaks: "leaks",
    ]

    public static func render(_ report: Report) throws -> String {
        let sections = report.options.sections
        var document: [String: JSON] = [
            "schema_version": .unsigned(UInt64(schemaVersion)),
            "trace": trace(report),
            "options": options(report.options),
            "summary": sections.contains(.summary) ? summary(report) : .null,
            "size_histogram": sections.contains(.histogram) ? .array(report.histogram.map(bucket)) : .null,
            "per_thread": sections.contains(.threads) ? .array(report.threads.map(thread)) : .null,
            "symbolization": .optional(report.symbolization, symbolization),
            "sampling": .optional(report.sampling, sampling),
            "rss_samples": .array(
                report.residentSamples.map {
                    .object([
                        "time_ns": .unsigned($0.time), "rss_bytes": .unsigned($0.residentBytes),
                        "brk_bytes": .unsigned($0.breakBytes),
                    ])
                }),
        ]
        if let view = report.allocator { document["allocator"] = AllocatorJSONRenderer.render(view) }
        for (section, key) in siteKeys {
            document[key] = sections.contains(section) ? .array((report.sites[section] ?? []).map(site)) : .null
        }
        return try JSON.object(document).rendered()
    }

    static func sampling(_ sampling: SampleEstimator) -> JSON {
        .object([
            "rate_bytes": .unsigned(sampling.rate),
            "samples": .unsigned(sampling.samples),
            "estimated_allocation_calls": .unsigned(UInt64(sampling.estimatedAllocationCalls.rounded())),
        ])
    }

    static func trace(_ report: Report) -> JSON {
        var endReason = "none"
        var exitStatus = JSON.null
        switch report.end?.reason {
        case .normalExit: endReason = "exit"
        case .underscoreExit(let status):
            endReason = "_exit"
            exitStatus = .signed(Int64(status))
        case .quickExit(let status):
            endReason = "quick_exit"
            exitStatus = .signed(Int64(status))
        case .exec: endReason = "exec"
        case .unknown: endReason = "unknown"
        case nil: break
        }
        return .object([
            "path": .string(report.tracePath),
            "pid": .optional(report.process?.pid) { .unsigned(UInt64($0)) },
            "executable": .optional(report.process?.executable, JSON.string),
            "arguments": .array((report.process?.arguments ?? []).map(JSON.string)),
            "truncated": .bool(report.isTruncated),
            "end_reason": .string(endReason),
            "exit_status": exitStatus,
            "duration_ns": .unsigned(report.durationNanoseconds),
            "diagnostics": .array(report.diagnostics.map(JSON.string)),
        ])
    }

    static func options(_ options: ReportOptions) -> JSON {
        let filters = options.filters
        return .object([
            "sections": .array(ReportSection.allCases.filter(options.sections.contains).map { .string($0.rawValue) }),
            "group_by": .string(options.grouping.rawValue),
            "top": .object(
                Dictionary(
                    uniqueKeysWithValues: ReportSection.allCases.filter { $0.listsSites || $0 == .threads }.map {
                        ($0.rawValue, JSON.unsigned(UInt64(max(0, options.limit(for: $0)))))
                    })),
            "temporary_threshold": .unsigned(UInt64(options.temporaryThreshold)),
            "keep_allocator_frames": .bool(options.keepsAllocatorFrames),
            "filters": .object([
                "from_ns": .optional(filters.from) { .unsigned(ReportFilters.nanoseconds($0)) },
                "to_ns": .optional(filters.to) { .unsigned(ReportFilters.nanoseconds($0)) },
                "from_mark": .optional(filters.fromMark, JSON.string),
                "to_mark": .optional(filters.toMark, JSON.string),
                "snapshot": .optional(filters.snapshot, JSON.string),
                "threads": .array(filters.threads.map { .unsigned(UInt64($0)) }),
                "include": .array(filters.include.map { .string($0.description) }),
                "exclude": .array(filters.exclude.map { .string($0.description) }),
            ]),
        ])
    }

    static func summary(_ report: Report) -> JSON {
        let summary = report.summary
        return .object([
            "allocation_calls": .unsigned(summary.allocationCalls),
            "failed_calls": .unsigned(summary.failedCalls),
            "free_calls": .unsigned(summary.freeCalls),
            "calls_by_function": .object(
                Dictionary(
                    uniqueKeysWithValues: summary.callsByFunction.map { ($0.key.description, .unsigned($0.value)) })),
            "calls_per_second": .optional(report.callsPerSecond) { .double(($0 * 10).rounded() / 10) },
            "duration_ns": .unsigned(report.durationNanoseconds),
            "bytes_allocated": .unsigned(summary.bytesAllocated),
            "peak_bytes": .unsigned(summary.peakBytes),
            "peak_blocks": .unsigned(summary.peakBlocks),
            "peak_time_ns": .unsigned(summary.peakTime),
            "peak_rss_bytes": .optional(report.processMemory?.peakResidentBytes, JSON.unsigned),
            "leaked_bytes": .unsigned(summary.leakedBytes),
            "leaked_blocks": .unsigned(summary.leakedBlocks),
            "leak_kinds": leakKinds(report.leakKinds),
            "leak_scan": .optional(report.leakScan) { scan in
                .object([
                    "trigger": .string(scan.trigger.description),
                    "time_ns": .unsigned(scan.time),
                    "duration_ns": .unsigned(scan.duration),
                    "threads_scanned": .unsigned(UInt64(scan.threadsScanned)),
                    "threads_missed": .unsigned(UInt64(scan.threadsMissed)),
                    "blocks": .unsigned(UInt64(scan.blockCount)),
                    "counted_kinds": .array(
                        LeakKind.allCases.reversed().filter { report.options.leakKinds.contains($0) }.map {
                            .string($0.description)
                        }),
                ])
            },
            "temporary_allocations": .unsigned(report.temporaryAllocations),
            "temporary_bytes": .unsigned(report.temporaryBytes),
            "unmatched_frees": .unsigned(summary.unmatchedFrees),
            "ignored_frees": .unsigned(summary.ignoredFrees),
            "pools": .array(
                report.pools.map { pool in
                    .object([
                        "name": .string(pool.name),
                        "pools": .unsigned(UInt64(pool.poolCount)),
                        "allocation_calls": .unsigned(pool.figures.allocationCalls),
                        "bytes_allocated": .unsigned(pool.figures.bytesAllocated),
                        "peak_bytes": .unsigned(pool.figures.peakBytes),
                        "peak_blocks": .unsigned(pool.figures.peakBlocks),
                        "leaked_bytes": .unsigned(pool.figures.leakedBytes),
                        "leaked_blocks": .unsigned(pool.figures.leakedBlocks),
                    ])
                }),
            "marks": .array(
                report.marks.map { mark in
                    .object([
                        "kind": .string(mark.kind.rawValue),
                        "name": .string(mark.name),
                        "sequence": .unsigned(mark.sequence),
                        "time_ns": .unsigned(mark.time),
                        "thread": .unsigned(UInt64(mark.threadID)),
                    ])
                }),
            "threads": .unsigned(UInt64(summary.threadCount)),
            "stack_groups": .unsigned(UInt64(report.groupCount)),
            "truncated": .bool(report.isTruncated),
        ])
    }

    static func site(_ site: ReportSite) -> JSON {
        let figures = site.figures
        return .object([
            "bytes": .unsigned(site.bytes),
            "blocks": .unsigned(site.blocks),
            "group": .string(site.group),
            "stack_id": .unsigned(UInt64(site.stackID)),
            "stack_count": .unsigned(UInt64(site.stackCount)),
            "allocation_calls": .unsigned(figures.allocationCalls),
            "bytes_allocated": .unsigned(figures.bytesAllocated),
            "peak_bytes": .unsigned(figures.peakBytes),
            "peak_blocks": .unsigned(figures.peakBlocks),
            "leaked_bytes": .unsigned(figures.leakedBytes),
            "leaked_blocks": .unsigned(figures.leakedBlocks),
            "leak_kinds": leakKinds(figures.leakKinds),
            "temporary_allocations": .unsigned(figures.temporaryAllocations),
            "temporary_bytes": .unsigned(figures.temporaryBytes),
            "stack": .array(site.stack.map(frame)),
        ])
    }

    /// Live blocks at the end by kind: every kind's key is present, `unclassified` counts blocks no scan saw.
    static func leakKinds(_ breakdown: LeakBreakdown) -> JSON {
        func amount(_ amount: LeakAmount) -> JSON {
            .object(["bytes": .unsigned(amount.bytes), "blocks": .unsigned(amount.blocks)])
        }
        var fields = Dictionary(uniqueKeysWithValues: LeakKind.allCases.map { ($0.description, amount(breakdown[$0])) })
        fields["unclassified"] = amount(breakdown.unclassified)
        return .object(fields)
    }

    /// Every key is always present (null when unknown), so consumers need no existence checks.
    static func frame(_ frame: ReportFrame) -> JSON {
        .object([
            "address": .hex(frame.address),
            "module": .optional(frame.module, JSON.string),
            "offset": .optional(frame.offset, JSON.hex),
            "function": .optional(frame.function, JSON.string),
            "file": .optional(frame.file, JSON.string),
            "line": .optional(frame.line) { .signed(Int64($0)) },
            "inlined": .bool(frame.isInlined),
        ])
    }

    static func bucket(_ bucket: SizeHistogram.Bucket) -> JSON {
        .object([
            "min_size": .unsigned(bucket.minimumSize),
            "max_size": .unsigned(bucket.maximumSize),
            "allocation_calls": .unsigned(bucket.allocationCalls),
            "bytes": .unsigned(bucket.bytes),
        ])
    }

    static func thread(_ thread: ThreadTotals.Totals) -> JSON {
        .object([
            "thread_id": .unsigned(UInt64(thread.threadID)),
            "allocation_calls": .unsigned(thread.allocationCalls),
            "failed_calls": .unsigned(thread.failedCalls),
            "free_calls": .unsigned(thread.freeCalls),
            "bytes_allocated": .unsigned(thread.bytesAllocated),
            "first_event_ns": .unsigned(thread.firstEventTime),
            "last_event_ns": .unsigned(thread.lastEventTime),
        ])
    }

    static func symbolization(_ notes: SymbolizationNotes) -> JSON {
        .object([
            "backend": .string(notes.symbolizerPath != nil ? "llvm-symbolizer" : "symbol-tables"),
            "description": .string(notes.backend),
            "symbolizer": .optional(notes.symbolizerPath, JSON.string),
            "printed_addresses": .unsigned(UInt64(notes.printedAddresses)),
            "unresolved": .unsigned(UInt64(notes.unresolved)),
            "without_file_and_line": .unsigned(UInt64(notes.withoutSourceLocation)),
            "problems": .array(
                notes.problems.map {
                    .object([
                        "module": .string($0.module), "reason": .string($0.reason),
                        "addresses": .unsigned(UInt64($0.frames)),
                    ])
                }),
        ])
    }
}
