import MallocTraceAnalysis
import MallocTraceFormat

/// Renders a ``Report`` as the human-readable text of `malloctrace report`.
public enum TextRenderer {
    public static func render(_ report: Report) -> String {
        var out = header(report)
        let sections = report.options.sections
        for section in ReportSection.allCases where sections.contains(section) {
            switch section {
            case .summary: out += summary(report)
            case .peak, .allocations, .bytes, .temporary, .leaks: out += sites(report, section)
            case .histogram: out += histogram(report)
            case .threads: out += threads(report)
            }
        }
        if let view = report.allocator {
            out += AllocatorTextRenderer.render(view, top: report.options.top, sampled: report.sampling != nil)
        }
        if let notes = report.symbolization { out += symbolization(notes) }
        return out
    }

    private static func header(_ report: Report) -> String {
        var out = "malloctrace report of \(report.tracePath)\n"
        let summary = report.summary
        if let process = report.process {
            out += "  command    \(process.commandLine.escapingControlCharacters)\n"
            out +=
                "  process    pid \(process.pid), \(summary.threadCount) thread\(summary.threadCount == 1 ? "" : "s"), "
                + "ran \(Formatting.decimal(report.duration, places: 3)) s, \(report.endDescription)\n"
        } else {
            out += "  process    unknown (the process record is missing)\n"
        }
        if let sampling = report.sampling {
            out +=
                "  sampling   one allocation per \(Formatting.bytes(sampling.rate)) allocated, on average"
                + " (\(Formatting.counted(sampling.samples, "sample"))): bytes are estimates (≈), counts are samples\n"
        }
        if !report.options.filters.isEmpty {
            out += "  filter     only allocations \(report.options.filters.summary)\n"
        }
        for diagnostic in report.diagnostics { out += "  warning    \(diagnostic)\n" }
        return out
    }

    private static func summary(_ report: Report) -> String {
        let summary = report.summary
        var out = "\n"
        let failed = summary.failedCalls > 0 ? " (\(Formatting.grouped(summary.failedCalls)) more failed)" : ""
        let calls =
            report.sampling.map {
                "≈" + Formatting.grouped(UInt64($0.estimatedAllocationCalls.rounded()))
                    + " (\(Formatting.grouped(summary.allocationCalls)) sampled)"
            } ?? Formatting.grouped(summary.allocationCalls)
        var rows: [(String, String)] = [
            ("runtime", Formatting.seconds(nanoseconds: report.durationNanoseconds)),
            ("allocation calls", calls + failed),
            ("free calls", Formatting.grouped(summary.freeCalls)),
        ]
        if let rate = report.callsPerSecond, report.sampling == nil {
            rows.append(("calls per second", Formatting.grouped(UInt64(rate.rounded())) + " (allocations and frees)"))
        }
        rows += [
            ("bytes allocated", amount(report, summary.bytesAllocated)),
            (
                "peak heap",
                amount(report, summary.peakBytes) + " in \(Formatting.counted(summary.peakBlocks, "block")) at "
                    + Formatting.seconds(nanoseconds: summary.peakTime)
            ),
            (
                "leaked",
                amount(report, summary.leakedBytes) + " in \(Formatting.counted(summary.leakedBlocks, "block"))"
                    + leakQualifier(report)
            ),
        ]
        if let memory = report.processMemory {
            // The kernel's figures: what the process cost, allocator overhead and the tracer's own pages included.
            rows.insert(
                (
                    "peak RSS",
                    Formatting.bytes(memory.peakResidentBytes)
                        + " (resident at exit \(Formatting.bytes(memory.residentBytes)),"
                        + " brk heap \(Formatting.bytes(memory.breakBytes)))"
                ), at: rows.firstIndex { $0.0 == "peak heap" }.map { $0 + 1 } ?? rows.endIndex)
        }
        if report.leakScan != nil {
            rows.append(("live at exit", liveAtExit(report)))
        }
        rows.append(
            report.sampling != nil
                ? ("temporary", "not measured in a sampled trace")
                : (
                    "temporary",
                    Formatting.counted(report.temporaryAllocations, "allocation")
                        + " (\(percent(report.temporaryAllocations, of: summary.allocationCalls)) of allocation calls, "
                        + "\(Formatting.bytes(report.temporaryBytes))), \(temporaryRule(report.options.temporaryThreshold))"
                ))
        for (label, value) in rows { out += "  " + label.padding(18) + value + "\n" }
        if summary.unmatchedFrees > 0 {
            out +=
                "  " + "unmatched frees".padding(18) + Formatting.grouped(summary.unmatchedFrees)
                + " (blocks allocated before tracing started)\n"
        }
        return out + control(report)
    }

    /// The control API's part of the summary: pools, marks and snapshots, pauses.
    private static func control(_ report: Report) -> String {
        var rows: [(String, String)] = []
        for (index, pool) in report.pools.enumerated() {
            let figures = pool.figures
            rows.append(
                (
                    index == 0 ? "pools" : "",
                    "\(pool.name.escapingControlCharacters)\(pool.poolCount > 1 ? " (\(pool.poolCount) pools)" : ""): "
                        + "\(Formatting.bytes(figures.bytesAllocated)) in "
                        + Formatting.counted(figures.allocationCalls, "block") + ", peak "
                        + Formatting.bytes(figures.peakBytes) + ", leaked \(Formatting.bytes(figures.leakedBytes)) in "
                        + Formatting.counted(figures.leakedBlocks, "block")
                ))
        }
        for kind in [TraceMark.Kind.mark, .snapshot] {
            let named = report.marks.filter { $0.kind == kind }
            guard !named.isEmpty else { continue }
            rows.append(
                (
                    kind == .mark ? "marks" : "snapshots",
                    named.map { "\($0.name.escapingControlCharacters) (\(Formatting.seconds(nanoseconds: $0.time)))" }
                        .joined(separator: ", ")
                ))
        }
        let pauses = report.marks.count { $0.kind == .pause }
        if pauses > 0 {
            let ignored = report.summary.ignoredFrees
            rows.append(
                (
                    "paused",
                    Formatting.counted(UInt64(pauses), "time")
                        + (ignored > 0
                            ? "; \(Formatting.counted(ignored, "free")) of blocks allocated while paused not counted"
                            : "")
                ))
        }
        return rows.map { "  " + $0.0.padding(18) + $0.1 + "\n" }.joined()
    }

    /// Which live blocks the leaked figure counts.
    private static func leakQualifier(_ report: Report) -> String {
        guard report.leakScan != nil else { return " (never freed; no leak scan in this trace)" }
        let counted = LeakKind.allCases.reversed().filter { report.options.leakKinds.contains($0) }.map(\.description)
        return counted.isEmpty ? " (no leak kind counted)" : " (" + counted.joined(separator: ", ") + ")"
    }

    /// Every live block at the scan by kind: `1.2 KiB definite (3), 72.0 KiB reachable (2)`.
    static func liveAtExit(_ report: Report) -> String {
        var parts = LeakKind.allCases.reversed().compactMap { kind -> String? in
            let amount = report.leakKinds[kind]
            guard amount.blocks > 0 else { return nil }
            return "\(Formatting.bytes(amount.bytes)) \(kind) (\(Formatting.counted(amount.blocks, "block")))"
        }
        if report.leakKinds.unclassified.blocks > 0 {
            let amount = report.leakKinds.unclassified
            parts.append(
                "\(Formatting.bytes(amount.bytes)) not scanned (\(Formatting.counted(amount.blocks, "block")))")
        }
        guard let scan = report.leakScan else { return parts.joined(separator: ", ") }
        let missed =
            scan.threadsMissed > 0
            ? ", \(scan.threadsMissed) thread(s) did not stop: their stacks were not scanned" : ""
        return (parts.isEmpty ? "nothing" : parts.joined(separator: ", "))
            + " — scanned at \(scan.trigger) in \(Formatting.seconds(nanoseconds: scan.duration))\(missed)"
    }

    private static func temporaryRule(_ threshold: Int) -> String {
        threshold == 0
            ? "freed before the thread's next allocation"
            : "freed within \(Formatting.counted(UInt64(threshold), "other allocation")) of the thread"
    }

    /// ` (definite 48 B, indirect 96 B)` for a site with a scan, empty without one.
    private static func kindBreakdown(_ kinds: LeakBreakdown, counted: Set<LeakKind>) -> String {
        let parts = LeakKind.allCases.reversed().compactMap { kind -> String? in
            let amount = kinds[kind]
            guard counted.contains(kind), amount.blocks > 0 else { return nil }
            return "\(kind) \(Formatting.bytes(amount.bytes))"
        }
        return parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
    }

    private static func sites(_ report: Report, _ section: ReportSection) -> String {
        if section == .temporary, report.sampling != nil {
            return "\nMost temporary allocations\n  not measured in a sampled trace\n"
        }
        let summary = report.summary
        let grouping =
            switch report.options.grouping {
            case .stack: "call stack"
            case .function: "function"
            case .file: "file"
            }
        let title: String
        let empty: String
        let describe: (ReportSite) -> String
        switch section {
        case .peak:
            title =
                "Peak contributors: live at the peak (\(Formatting.seconds(nanoseconds: summary.peakTime))), by \(grouping)"
            empty = "nothing was live"
            describe = {
                "\(amount(report, $0.bytes)) in \(Formatting.counted($0.blocks, "block"))"
                    + " (\(percent($0.bytes, of: summary.peakBytes)) of the peak)"
            }
        case .allocations:
            title = "Most allocation calls, by \(grouping)"
            empty = "no allocations"
            describe = { "\(Formatting.counted($0.blocks, "call")), \(amount(report, $0.bytes))" }
        case .bytes:
            title = "Most bytes allocated, by \(grouping)"
            empty = "no allocations"
            describe = { "\(amount(report, $0.bytes)) in \(Formatting.counted($0.blocks, "call"))" }
        case .temporary:
            title = "Most temporary allocations, by \(grouping)"
            empty = "no temporary allocations"
            describe = {
                "\(Formatting.counted($0.blocks, "temporary allocation")) of \(Formatting.counted($0.allocationCalls, "call"))"
                    + " (\(percent($0.blocks, of: $0.allocationCalls))), \(amount(report, $0.bytes))"
            }
        default:
            title =
                report.leakScan == nil
                ? "Leaks: blocks never freed, by \(grouping)"
                : "Leaks: blocks never freed and not reachable at exit, by \(grouping)"
            empty = "no leaks"
            describe = { site in
                "\(amount(report, site.bytes)) in \(Formatting.counted(site.blocks, "block"))"
                    + kindBreakdown(site.figures.leakKinds, counted: report.options.leakKinds)
            }
        }
        var out = "\n\(title)\n"
        let entries = report.sites[section] ?? []
        if entries.isEmpty { return out + "  \(report.options.limit(for: section) == 0 ? "(--top 0)" : empty)\n" }
        for (rank, site) in entries.enumerated() {
            out += "  #\(rank + 1)  \(describe(site))\n"
            if report.options.grouping != .stack {
                let stacks =
                    site.stackCount == 1
                    ? "1 call stack" : "\(Formatting.grouped(UInt64(site.stackCount))) call stacks, the largest shown"
                out += "      \(site.group): \(stacks)\n"
            }
            if site.stack.isEmpty { out += "        (no stack recorded)\n" }
            for frame in site.stack { out += "        \(frame.displayName)\n" }
        }
        return out
    }

    private static func histogram(_ report: Report) -> String {
        var out = "\nAllocation sizes: calls by requested size, [from, to)\n"
        if report.sampling != nil { return out + "  not available for a sampled trace (its sizes are estimates)\n" }
        guard !report.histogram.isEmpty else { return out + "  no allocations\n" }
        let total = report.summary.allocationCalls
        let widest = report.histogram.map(\.allocationCalls).max() ?? 1
        out += "  " + "size".padding(20) + "calls".leftPadding(14) + "  " + "bytes".leftPadding(22) + "\n"
        for bucket in report.histogram {
            let range =
                bucket.minimumSize == bucket.maximumSize
                ? size(bucket.minimumSize)
                : bucket.maximumSize == UInt64.max
                    ? "[\(size(bucket.minimumSize)), max]"
                    : "[\(size(bucket.minimumSize)), \(size(bucket.maximumSize + 1)))"
            let bar = String(repeating: "#", count: Int((bucket.allocationCalls * 30 + widest - 1) / max(widest, 1)))
            out +=
                "  " + range.padding(20) + Formatting.grouped(bucket.allocationCalls).leftPadding(14) + "  "
                + amount(report, bucket.bytes).leftPadding(22) + "  "
                + percent(bucket.allocationCalls, of: total).leftPadding(6)
                + " " + bar + "\n"
        }
        return out
    }

    private static func threads(_ report: Report) -> String {
        var out = "\nThreads, by allocation calls\n"
        guard !report.threads.isEmpty else { return out + "  no heap events\n" }
        out +=
            "  " + "thread".padding(10) + "allocations".leftPadding(14) + "frees".leftPadding(14)
            + "bytes allocated".leftPadding(26) + "   active\n"
        for thread in report.threads {
            out +=
                "  " + String(thread.threadID).padding(10) + Formatting.grouped(thread.allocationCalls).leftPadding(14)
                + Formatting.grouped(thread.freeCalls).leftPadding(14)
                + amount(report, thread.bytesAllocated).leftPadding(26)
                + "   " + Formatting.seconds(nanoseconds: thread.firstEventTime) + " - "
                + Formatting.seconds(nanoseconds: thread.lastEventTime) + "\n"
        }
        if report.threads.count < report.summary.threadCount {
            out += "  (\(report.summary.threadCount - report.threads.count) more)\n"
        }
        return out
    }

    private static func symbolization(_ notes: SymbolizationNotes) -> String {
        var out = "\nFrames: \(notes.backend)\n"
        let missing = notes.unresolved + notes.withoutSourceLocation
        if missing == 0 {
            return out + "  all \(Formatting.grouped(UInt64(notes.printedAddresses))) printed addresses resolved\n"
        }
        out +=
            "  of \(Formatting.grouped(UInt64(notes.printedAddresses))) printed addresses, "
            + "\(Formatting.grouped(UInt64(notes.unresolved))) unresolved (shown as module+0xoffset) and "
            + "\(Formatting.grouped(UInt64(notes.withoutSourceLocation))) without file and line:\n"
        for problem in notes.problems.prefix(12) {
            let name = problem.module.split(separator: "/").last.map(String.init) ?? problem.module
            out += "    \(name): \(problem.reason) (\(Formatting.counted(UInt64(problem.frames), "address")))\n"
        }
        if notes.problems.count > 12 { out += "    (\(notes.problems.count - 12) more)\n" }
        return out
    }

    /// A power of two in the largest unit that keeps it whole: `512 B`, `1 KiB`, `64 MiB`.
    static func size(_ bytes: UInt64) -> String {
        var value = bytes
        for unit in ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] {
            if value < 1024 || value % 1024 != 0 { return "\(value) \(unit)" }
            value /= 1024
        }
        return "\(value) EiB"
    }

    /// `1,030 B`, `1.5 KiB`: short, for table columns.
    static func compact(_ bytes: UInt64) -> String {
        bytes < 1024 ? "\(Formatting.grouped(bytes)) B" : Formatting.bytes(bytes)
    }

    /// Bytes in full; an estimate (marked ≈) in a sampled trace.
    static func amount(_ report: Report, _ bytes: UInt64) -> String {
        let about = report.sampling == nil ? "" : "≈"
        return bytes < 1024
            ? "\(about)\(Formatting.grouped(bytes)) B"
            : "\(about)\(Formatting.bytes(bytes)) (\(Formatting.grouped(bytes)) B)"
    }

    static func percent(_ part: UInt64, of whole: UInt64) -> String {
        whole == 0 ? "0%" : Formatting.decimal(Double(part) * 100 / Double(whole), places: 1) + "%"
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }

    func leftPadding(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
