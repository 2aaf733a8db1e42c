import MallocTraceAnalysis
import MallocTraceFormat

/// Renders a ``TraceDiff`` as text or JSON (documented in docs/json-schema.md, "malloctrace diff").
public enum DiffRenderer {
    public static func text(_ diff: TraceDiff) -> String {
        var out = "malloctrace diff\n"
        for (label, side) in [("before", diff.before), ("after", diff.after)] {
            let command = side.process?.commandLine.escapingControlCharacters ?? "unknown command"
            out +=
                "  \(label.padding(7))\(side.tracePath)\(side.snapshot.map { " at snapshot '\($0)'" } ?? ""): \(command), ran "
                + "\(Formatting.seconds(nanoseconds: side.durationNanoseconds))"
                + (side.isTruncated ? " (truncated)" : "") + "\n"
            for diagnostic in side.diagnostics { out += "  warning  \(diagnostic)\n" }
        }
        if !diff.options.filters.isEmpty { out += "  filter   only allocations \(diff.options.filters.summary)\n" }
        let (old, new) = (diff.before.summary, diff.after.summary)
        out +=
            "\n  " + "".padding(18) + "before".leftPadding(16) + "after".leftPadding(16) + "change".leftPadding(16)
            + "\n"
        let rows: [(String, UInt64, UInt64, Bool)] = [
            ("allocation calls", old.allocationCalls, new.allocationCalls, false),
            ("free calls", old.freeCalls, new.freeCalls, false),
            ("bytes allocated", old.bytesAllocated, new.bytesAllocated, true),
            ("peak heap", old.peakBytes, new.peakBytes, true),
            ("leaked", old.leakedBytes, new.leakedBytes, true),
            ("leaked blocks", old.leakedBlocks, new.leakedBlocks, false),
            ("temporary", diff.before.temporaryAllocations, diff.after.temporaryAllocations, false),
        ]
        for (label, before, after, isBytes) in rows {
            let show = { (value: UInt64) -> String in isBytes ? TextRenderer.compact(value) : Formatting.grouped(value)
            }
            out +=
                "  " + label.padding(18) + show(before).leftPadding(16) + show(after).leftPadding(16)
                + signed(DiffEntry.change(before, after), bytes: isBytes).leftPadding(16) + "\n"
        }
        let grouping =
            switch diff.options.grouping {
            case .stack: "call stack"
            case .function: "function"
            case .file: "file"
            }
        out +=
            "\nLargest changes, by \(grouping) (\(describe(diff.order))): \(diff.changedGroups) of "
            + "\(diff.matchedGroups + diff.onlyBefore + diff.onlyAfter) changed, \(diff.onlyBefore) only before, "
            + "\(diff.onlyAfter) only after\n"
        if diff.entries.isEmpty { out += "  no changes\n" }
        for (rank, entry) in diff.entries.enumerated() {
            let presence =
                entry.stacksBefore == 0 ? " (new)" : entry.stacksAfter == 0 ? " (gone)" : ""
            out += "  #\(rank + 1)\(presence)  " + figures(entry).joined(separator: ", ") + "\n"
            if diff.options.grouping != .stack { out += "      \(entry.label)\n" }
            if entry.stack.isEmpty { out += "        (no stack recorded)\n" }
            for frame in entry.stack { out += "        \(frame.displayName)\n" }
        }
        return out
    }

    private static func describe(_ order: DiffOrder) -> String {
        switch order {
        case .largest: "by the largest change of peak, leaked or allocated bytes"
        case .peak: "by the change of live bytes at the peak"
        case .leaked: "by the change of leaked bytes"
        case .allocations: "by the change of allocation calls"
        case .bytes: "by the change of bytes allocated"
        }
    }

    private static func figures(_ entry: DiffEntry) -> [String] {
        var parts: [String] = []
        let items: [(String, UInt64, UInt64, Int64, Bool)] = [
            ("peak", entry.before.peakBytes, entry.after.peakBytes, entry.peakChange, true),
            ("leaked", entry.before.leakedBytes, entry.after.leakedBytes, entry.leakedChange, true),
            ("calls", entry.before.allocationCalls, entry.after.allocationCalls, entry.callsChange, false),
            ("allocated", entry.before.bytesAllocated, entry.after.bytesAllocated, entry.bytesChange, true),
        ]
        for (name, before, after, change, isBytes) in items where change != 0 {
            let show = { (value: UInt64) -> String in isBytes ? TextRenderer.compact(value) : Formatting.grouped(value)
            }
            parts.append("\(name) \(signed(change, bytes: isBytes)) (\(show(before)) -> \(show(after)))")
        }
        return parts.isEmpty ? ["temporary allocations changed"] : parts
    }

    static func signed(_ value: Int64, bytes: Bool) -> String {
        let magnitude = value.magnitude
        let text = bytes ? TextRenderer.compact(magnitude) : Formatting.grouped(magnitude)
        return value == 0 ? "0" : (value > 0 ? "+" : "-") + text
    }

    public static func json(_ diff: TraceDiff) throws -> String {
        func side(_ side: DiffSide) -> JSON {
            .object([
                "path": .string(side.tracePath),
                "snapshot": .optional(side.snapshot, JSON.string),
                "pid": .optional(side.process?.pid) { .unsigned(UInt64($0)) },
                "executable": .optional(side.process?.executable, JSON.string),
                "arguments": .array((side.process?.arguments ?? []).map(JSON.string)),
                "truncated": .bool(side.isTruncated),
                "duration_ns": .unsigned(side.durationNanoseconds),
                "diagnostics": .array(side.diagnostics.map(JSON.string)),
            ])
        }
        func totals(_ side: DiffSide) -> [String: UInt64] {
            [
                "allocation_calls": side.summary.allocationCalls, "free_calls": side.summary.freeCalls,
                "bytes_allocated": side.summary.bytesAllocated, "peak_bytes": side.summary.peakBytes,
                "leaked_bytes": side.summary.leakedBytes, "leaked_blocks": side.summary.leakedBlocks,
                "temporary_allocations": side.temporaryAllocations,
            ]
        }
        func figures(_ figures: SiteFigures, present: Bool) -> JSON {
            guard present else { return .null }
            return .object([
                "peak_bytes": .unsigned(figures.peakBytes), "peak_blocks": .unsigned(figures.peakBlocks),
                "leaked_bytes": .unsigned(figures.leakedBytes), "leaked_blocks": .unsigned(figures.leakedBlocks),
                "allocation_calls": .unsigned(figures.allocationCalls),
                "bytes_allocated": .unsigned(figures.bytesAllocated),
                "temporary_allocations": .unsigned(figures.temporaryAllocations),
            ])
        }
        let (old, new) = (totals(diff.before), totals(diff.after))
        let summary: JSON = .object([
            "before": .object(old.mapValues { .unsigned($0) }),
            "after": .object(new.mapValues { .unsigned($0) }),
            "change": .object(
                Dictionary(
                    uniqueKeysWithValues: old.keys.map { ($0, .signed(DiffEntry.change(old[$0] ?? 0, new[$0] ?? 0))) })),
        ])
        let entries: [JSON] = diff.entries.map { entry in
            .object([
                "group": .string(entry.label),
                "key": .string(entry.key),
                "before": figures(entry.before, present: entry.stacksBefore > 0),
                "after": figures(entry.after, present: entry.stacksAfter > 0),
                "stacks_before": .unsigned(UInt64(entry.stacksBefore)),
                "stacks_after": .unsigned(UInt64(entry.stacksAfter)),
                "change": .object([
                    "peak_bytes": .signed(entry.peakChange), "leaked_bytes": .signed(entry.leakedChange),
                    "allocation_calls": .signed(entry.callsChange), "bytes_allocated": .signed(entry.bytesChange),
                    "temporary_allocations": .signed(entry.temporaryChange),
                ]),
                "stack": .array(entry.stack.map(JSONRenderer.frame)),
            ])
        }
        var options = JSONRenderer.options(diff.options)
        if case .object(var members) = options {
            members["sort"] = .string(diff.order.rawValue)
            members["top"] = .unsigned(UInt64(max(0, diff.options.top)))
            members["sections"] = nil
            options = .object(members)
        }
        return try JSON.object([
            "schema_version": .unsigned(UInt64(JSONRenderer.schemaVersion)),
            "before": side(diff.before),
            "after": side(diff.after),
            "options": options,
            "summary": summary,
            "changes": .array(entries),
            "changed_groups": .unsigned(UInt64(diff.changedGroups)),
            "matched_groups": .unsigned(UInt64(diff.matchedGroups)),
            "only_before": .unsigned(UInt64(diff.onlyBefore)),
            "only_after": .unsigned(UInt64(diff.onlyAfter)),
            "symbolization": JSONRenderer.symbolization(diff.symbolization),
        ]).rendered()
    }
}
