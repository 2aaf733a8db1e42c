import MallocTraceAnalysis
import MallocTraceFormat

/// The text of `report --allocator`: appended to the report by ``TextRenderer``.
enum AllocatorTextRenderer {
    static func render(_ view: AllocatorReport, top: Int, sampled: Bool = false) -> String {
        var out = "\n" + headline(view.details) + "\n"
        if sampled {
            out +=
                "  sampled trace: calls are the recorded samples, bytes estimates (≈); the live heap and the gap are rough\n"
        }
        guard view.hasUsableSizes else {
            return out
                + "  this trace has no usable sizes (recorded before malloctrace 0.x, or with MALLOCTRACE_USABLE=0):"
                + " only the resident set and mappings below\n" + gaps(view) + mappings(view, top: top)
        }
        let total = view.sources.total
        out += "  requested        \(bytes(total.requestedBytes)) in \(Formatting.counted(total.calls, "allocation"))\n"
        out +=
            "  usable           \(bytes(total.usableBytes)): \(bytes(total.wastedBytes)) more than requested"
            + " (internal waste, \(TextRenderer.percent(total.wastedBytes, of: total.usableBytes)))\n"
        if view.unknownCalls > 0 {
            out += "  not recorded     \(Formatting.counted(view.unknownCalls, "allocation")) without a usable size\n"
        }
        out += served(view.sources, glibc: view.details?.isGlibc ?? false)
        if let threshold = view.threshold { out += thresholdLines(threshold) }
        let peak = view.atPeak.sources.total
        out +=
            "  at the heap peak \(bytes(peak.requestedBytes)) requested live at"
            + " \(Formatting.seconds(nanoseconds: view.atPeak.time)): \(bytes(peak.chunkBytes)) "
            + (view.details?.isGlibc ?? false
                ? "in chunks (main arena \(bytes(view.atPeak.sources.mainArena.chunkBytes)),"
                    + " thread arenas \(bytes(view.atPeak.sources.threadArenas.chunkBytes)),"
                    + " mmap \(bytes(view.atPeak.sources.mmapped.chunkBytes)))\n"
                : "usable\n")
        out += gaps(view)
        out += sizeClasses(view)
        out += wasteSites(view)
        out += candidates(view, top: top)
        out += threads(view, top: top)
        out += mappings(view, top: top)
        return out
    }

    static func headline(_ details: AllocatorDetails?) -> String {
        guard let details else { return "Allocator: not recorded in this trace (traced before the allocator's view)" }
        let name =
            details.isGlibc
            ? "glibc \(details.libcVersion ?? "") malloc (ptmalloc)" : "not glibc's malloc (a preloaded allocator)"
        var recorded: [String] = []
        if details.recordsUsableSizes { recorded.append("usable sizes") }
        if details.recordsChunkFlags { recorded.append("chunk flags") }
        if details.recordsMappings { recorded.append("the program's own mappings") }
        return "Allocator: \(name); recorded: " + (recorded.isEmpty ? "nothing more" : recorded.joined(separator: ", "))
    }

    static func bytes(_ value: UInt64) -> String { TextRenderer.compact(value) }

    static func served(_ sources: ChunkSources, glibc: Bool) -> String {
        guard glibc else { return "" }
        var out = ""
        let rows: [(String, ChunkTally)] = [
            ("main arena (brk)", sources.mainArena), ("thread arenas", sources.threadArenas),
            ("mmap (own pages)", sources.mmapped),
        ]
        for (index, row) in rows.enumerated() {
            out +=
                (index == 0 ? "  served from      " : "                   ") + row.0.padding(18)
                + Formatting.counted(row.1.calls, "call").leftPadding(16) + "  "
                + "\(bytes(row.1.requestedBytes)) requested".leftPadding(22) + "  "
                + "\(bytes(row.1.chunkBytes)) in chunks\n"
        }
        return out
    }

    static func thresholdLines(_ threshold: ThresholdTimeline) -> String {
        var out = "  mmap threshold   \(bytes(threshold.initial)) at start"
        for change in threshold.changes.prefix(8) {
            let cause = change.cause == .mallopt ? "mallopt" : "a freed mmapped chunk"
            out += "; \(bytes(change.threshold)) at \(Formatting.seconds(nanoseconds: change.time)) (\(cause))"
        }
        if threshold.changes.count > 8 { out += "; … \(threshold.changes.count - 8) more changes" }
        out += threshold.isDynamicAtEnd ? " (dynamic)\n" : " (fixed)\n"
        return out
    }

    static func gaps(_ view: AllocatorReport) -> String {
        guard !view.gaps.isEmpty else {
            return "  resident set     not recorded (MALLOCTRACE_RSS=0, or an older trace)\n"
        }
        var out = "\nResident set against the live heap (the gap: memory the process holds beyond live requests)\n"
        for gap in view.gaps {
            out +=
                "  at \(gap.moment) (\(Formatting.seconds(nanoseconds: gap.time))): RSS \(bytes(gap.residentBytes)),"
                + " live heap \(bytes(gap.liveRequestedBytes)) requested, brk heap \(bytes(gap.breakBytes));"
                + " gap \(bytes(gap.gapBytes))\n"
            for (part, amount) in gap.parts {
                out += "    " + describe(part).padding(78) + bytes(amount).leftPadding(12) + "\n"
                guard part == .directMappings else { continue }
                for (cause, mapped) in gap.mappingCauses.prefix(5) {
                    out += "      " + cause.padding(76) + bytes(mapped).leftPadding(12) + " mapped\n"
                }
            }
        }
        if view.mappings == nil {
            out += "  (run with --mmap to see the program's own mappings, such as pymalloc's arenas, by call stack)\n"
        }
        return out
    }

    static func describe(_ part: MemoryGap.Part) -> String {
        switch part {
        case .allocatorOverhead: "allocator overhead: usable bytes beyond requests, chunk headers"
        case .freeHeap: "free heap: brk heap not in live chunks (fragmentation, free chunks, top)"
        case .directMappings: "direct mappings: the program's own mmaps (pymalloc arenas, custom pools)"
        case .other: "other: code, libraries, stacks, thread arenas' free space, untraced maps"
        }
    }

    static func sizeClasses(_ view: AllocatorReport) -> String {
        var out = "\nInternal waste by requested size, [from, to)\n"
        out +=
            "  " + "size".padding(20) + "calls".leftPadding(14) + "requested".leftPadding(14) + "usable".leftPadding(14)
            + "waste".leftPadding(12) + "\n"
        for size in view.sizeClasses {
            let range =
                size.minimumSize == size.maximumSize
                ? TextRenderer.size(size.minimumSize)
                : "[\(TextRenderer.size(size.minimumSize)), "
                    + (size.maximumSize == .max ? "max]" : "\(TextRenderer.size(size.maximumSize + 1)))")
            out +=
                "  " + range.padding(20) + Formatting.grouped(size.tally.calls).leftPadding(14)
                + bytes(size.tally.requestedBytes).leftPadding(14) + bytes(size.tally.usableBytes).leftPadding(14)
                + TextRenderer.percent(size.tally.wastedBytes, of: size.tally.usableBytes).leftPadding(12) + "\n"
        }
        return out
    }

    static func stack(_ frames: [ReportFrame]) -> String {
        frames.isEmpty ? "        (no stack recorded)\n" : frames.map { "        \($0.displayName)\n" }.joined()
    }

    static func wasteSites(_ view: AllocatorReport) -> String {
        var out = "\nInternal waste by call site\n"
        if view.wasteSites.isEmpty { return out + "  none\n" }
        for (rank, site) in view.wasteSites.enumerated() {
            let total = site.sources.total
            out +=
                "  #\(rank + 1)  \(bytes(total.wastedBytes)) unused of \(bytes(total.usableBytes)) usable"
                + " in \(Formatting.counted(total.calls, "call"))\n" + stack(site.stack)
        }
        return out
    }

    static func candidates(_ view: AllocatorReport, top: Int) -> String {
        var out = "\nRequests just above a boundary (cheap wins)\n"
        if view.candidates.isEmpty { return out + "  none\n" }
        for (rank, entry) in view.candidates.enumerated() {
            let candidate = entry.candidate
            let what: String
            switch candidate.kind {
            case .mmapThreshold(let threshold):
                what =
                    "\(Formatting.grouped(candidate.requested)) B is \(Formatting.grouped(candidate.excess)) B above the"
                    + " mmap threshold (\(bytes(threshold))): every call maps and unmaps pages of its own;"
                    + " at most \(Formatting.grouped(candidate.boundary)) B would come from the heap"
            case .sizeClass:
                what =
                    "\(Formatting.grouped(candidate.requested)) B takes \(Formatting.grouped(candidate.usable)) usable;"
                    + " \(Formatting.grouped(candidate.boundary)) B would take a chunk 16 B smaller"
            }
            out +=
                "  #\(rank + 1)  \(Formatting.counted(candidate.calls, "call")): \(what)"
                + " (\(bytes(candidate.savableBytes)) in all)\n" + stack(entry.stack)
        }
        return out
    }

    static func threads(_ view: AllocatorReport, top: Int) -> String {
        guard view.details?.recordsChunkFlags ?? false else { return "" }
        var out = "\nArenas per thread: allocation calls (bytes in chunks)\n"
        out +=
            "  " + "thread".padding(10) + "main arena".leftPadding(26) + "thread arenas".leftPadding(26)
            + "mmap".leftPadding(26) + "\n"
        func cell(_ tally: ChunkTally) -> String { "\(Formatting.grouped(tally.calls)) (\(bytes(tally.chunkBytes)))" }
        for (threadID, sources) in view.threads.prefix(max(0, top)) {
            out +=
                "  " + String(threadID).padding(10) + cell(sources.mainArena).leftPadding(26)
                + cell(sources.threadArenas).leftPadding(26) + cell(sources.mmapped).leftPadding(26) + "\n"
        }
        if view.threads.count > top { out += "  (\(view.threads.count - top) more)\n" }
        return out
    }

    static func mappings(_ view: AllocatorReport, top: Int) -> String {
        guard let mappings = view.mappings else { return "" }
        var out = "\nThe program's own mappings (mmap, munmap, mremap, brk, sbrk; not malloc's)\n"
        out +=
            "  \(Formatting.counted(mappings.mmapCalls, "anonymous mmap")), \(bytes(mappings.bytesMapped)) mapped;"
            + " \(Formatting.counted(mappings.munmapCalls, "munmap")), \(Formatting.counted(mappings.mremapCalls, "mremap"));"
            + " \(bytes(mappings.liveBytes)) still mapped at the end, peak \(bytes(mappings.peakBytes))"
            + " at \(Formatting.seconds(nanoseconds: mappings.peakTime))\n"
        if mappings.breakMoves > 0 {
            out +=
                "  program break moved \(Formatting.counted(mappings.breakMoves, "time")) by the program itself,"
                + " \(mappings.breakBytes) B net\n"
        }
        for (rank, group) in view.mappingCauses.enumerated() {
            out +=
                "  #\(rank + 1)  \(group.cause): \(bytes(group.liveBytes)) mapped at the end, \(bytes(group.peakBytes))"
                + " at the peak; \(Formatting.counted(group.mmapCalls, "mmap")), \(bytes(group.bytesMapped)) in all\n"
            for entry in group.sites {
                let site = entry.site
                out +=
                    "      \(Formatting.counted(site.mmapCalls, "mmap")) of typically \(bytes(site.typicalLength))"
                    + " (\(bytes(site.bytesMapped)) in all) from\n" + stack(entry.stack)
            }
        }
        return out
    }
}
