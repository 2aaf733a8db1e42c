import MallocTraceAnalysis
public import MallocTraceFormat
import MallocTraceReports
public import MallocTraceSymbolication

/// Turns one trace into a ``ProcessVerdict``: its live blocks at exit, one finding per call stack and leak
/// kind that counts. Suppressions, limits and baselines are applied afterwards, on the verdict.
public enum VerdictBuilder {
    /// Reads `tracePath` in one pass and resolves the frames of every stack with a finding.
    /// Without a leak scan in the trace, every block never freed counts as a definite leak, unless
    /// `scanRequested` (the process ran with scanning on) and it never reached its exit: then nothing counts.
    public static func verdict(
        tracePath: String, countedKinds: Set<LeakKind>, symbolizer backend: Symbolizer.Backend = .automatic,
        stacksForBaseline: Int = 0, scanRequested: Bool = false
    ) throws(TraceError) -> ProcessVerdict {
        var options = ReportOptions()
        options.symbolizer = backend
        options.leakKinds = countedKinds
        let (pass, symbolizer) = try TracePass.run(
            tracePath: tracePath, options: options, countsSizes: false, countsThreads: false)
        let reader = pass.reader
        let hasScan = reader.leakScan != nil
        // exec throws the old image's heap away, blocks and pointers alike: nothing it held can leak (neither
        // LeakSanitizer nor memcheck looks at exec). A followed process is judged in the new image's trace.
        let replacedByExec = reader.end?.reason == .exec
        // Killed by a signal, or still running: the exit-time scan never ran. What was live then is neither a
        // leak nor not one (LeakSanitizer reports nothing in that case; the program's own status fails the run).
        let endedBeforeScan = scanRequested && !hasScan && reader.end == nil
        var candidates: [(stackID: UInt32, kind: LeakKind, amount: LeakAmount, function: AllocationFunction?)] = []
        var uncountedBytes: [LeakKind: UInt64] = [:]
        var uncountedBlocks: [LeakKind: UInt64] = [:]
        for (stackID, figures) in pass.sites where !replacedByExec && !endedBeforeScan {
            guard hasScan else {
                // No scan: never freed is all that is known, so every live block counts (as before scans).
                if figures.leakedBlocks > 0 {
                    let amount = LeakAmount(bytes: figures.leakedBytes, blocks: figures.leakedBlocks)
                    candidates.append((stackID, .definite, amount, figures.function))
                }
                continue
            }
            for (kind, amount) in figures.leakKinds.byKind where amount.blocks > 0 {
                if countedKinds.contains(kind) {
                    candidates.append((stackID, kind, amount, figures.function))
                } else {
                    uncountedBytes[kind, default: 0] &+= amount.bytes
                    uncountedBlocks[kind, default: 0] &+= amount.blocks
                }
            }
        }
        let shown = StackPresenter(reader: reader, symbolizer: symbolizer, keepsAllocatorFrames: false)
        shown.prepareFrames(Set(candidates.map(\.stackID)))
        var findings = candidates.map { candidate in
            LeakFinding(
                kind: candidate.kind, bytes: candidate.amount.bytes, blocks: candidate.amount.blocks,
                stackID: candidate.stackID, allocationFunction: candidate.function,
                frames: shown.frames(candidate.stackID),
                allFrames: shown.allFrames(candidate.stackID))
        }
        // LeakSanitizer's order: direct leaks before indirect ones, then by size.
        findings.sort {
            ($1.kind, $0.bytes, $1.stackID) < ($0.kind, $1.bytes, $0.stackID)
        }
        var notes = reader.diagnostics.map(\.description)
        if let scan = reader.leakScan, scan.threadsMissed > 0 {
            notes.append(
                "\(scan.threadsMissed) thread(s) did not stop for the leak scan: blocks only their stacks held may be"
                    + " reported as leaks")
        }
        if replacedByExec {
            notes.append("it replaced itself with exec: the blocks it held went with its old image, none is a leak")
        }
        if endedBeforeScan {
            notes.append(
                "it never reached exit (killed by a signal, or still running), so its leak scan did not run: the"
                    + " \(pass.summary.leakedBlocks) block(s) live at its end are not judged")
        }
        let stacks = baselineStacks(pass: pass, presenter: shown, limit: stacksForBaseline)
        return ProcessVerdict(
            tracePath: tracePath, processID: reader.process?.pid, executable: reader.process?.executable,
            arguments: reader.process?.arguments ?? [], endDescription: Report.endDescription(reader.end),
            hasLeakScan: hasScan,
            findings: findings, uncountedBytes: uncountedBytes, uncountedBlocks: uncountedBlocks,
            peakBytes: pass.summary.peakBytes, allocationCalls: pass.summary.allocationCalls, stacks: stacks,
            notes: notes, replacedByExec: replacedByExec, endedBeforeScan: endedBeforeScan)
    }

    /// The stacks a baseline compares: the `limit` largest by bytes live at the peak, and by allocation calls
    /// (resolving every stack of a large program would cost more than the check itself).
    private static func baselineStacks(pass: TracePass, presenter: StackPresenter, limit: Int) -> [StackFigures] {
        guard limit > 0 else { return [] }
        let byPeak = pass.sites.filter { $0.value.peakBytes > 0 }.sorted { $0.value.peakBytes > $1.value.peakBytes }
        let byCalls = pass.sites.sorted { $0.value.allocationCalls > $1.value.allocationCalls }
        let chosen = Set(byPeak.prefix(limit).map(\.key)).union(byCalls.prefix(limit).map(\.key))
        presenter.prepareFrames(chosen)
        var merged: [String: StackFigures] = [:]
        for id in chosen.sorted() {
            guard let figures = pass.sites[id] else { continue }
            let frames = presenter.frames(id)
            let key = Baseline.stackKey(frames)
            // Stacks that differ only in addresses (inlined copies, a rebuilt binary) are one stack here.
            if var existing = merged[key] {
                existing.peakBytes &+= figures.peakBytes
                existing.allocationCalls &+= figures.allocationCalls
                merged[key] = existing
            } else {
                merged[key] = StackFigures(
                    key: key, frames: frames, peakBytes: figures.peakBytes, allocationCalls: figures.allocationCalls)
            }
        }
        return merged.values.sorted { $0.key < $1.key }
    }
}
