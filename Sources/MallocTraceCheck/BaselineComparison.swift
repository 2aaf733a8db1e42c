import MallocTraceReports

/// The result of comparing a check with a baseline.
public struct BaselineComparison: Sendable, Equatable {
    /// Violations per process of the current verdict, by index.
    public var violations: [[LimitViolation]]
    /// Indices of current processes that have no counterpart in the baseline (nothing to compare).
    public var unmatched: [Int]
}

extension Baseline {
    /// How many grown stacks a violation names.
    public static let grownSiteCount = 5

    /// Compares each process of `current` with the baseline process of the same identity (executable file
    /// name and arguments; the n-th current process of an identity pairs with the n-th baseline one). A
    /// figure (peak, leaked bytes, allocation calls) that grew by more than `failOnIncreasePercent` percent
    /// is a violation naming the five stacks whose same figure grew most. From zero, any growth counts.
    public func compare(_ current: CheckVerdict, failOnIncreasePercent: Double) -> BaselineComparison {
        var pools: [String: [Process]] = [:]
        for process in processes { pools[process.identity, default: []].append(process) }
        var result = BaselineComparison(violations: [], unmatched: [])
        for (index, verdict) in current.processes.enumerated() {
            let now = Self.figures(verdict)
            guard let before = pools[now.identity]?.first else {
                result.violations.append([])
                result.unmatched.append(index)
                continue
            }
            pools[now.identity]?.removeFirst()
            result.violations.append(
                Self.compare(now, before, verdict: verdict, threshold: failOnIncreasePercent))
        }
        return result
    }

    /// Adds each process's baseline violations to its ``ProcessVerdict/violations`` and notes unmatched
    /// processes in its ``ProcessVerdict/notes``.
    public func apply(to verdict: inout CheckVerdict, failOnIncreasePercent: Double) {
        let comparison = compare(verdict, failOnIncreasePercent: failOnIncreasePercent)
        for index in verdict.processes.indices {
            verdict.processes[index].violations += comparison.violations[index]
        }
        for index in comparison.unmatched {
            verdict.processes[index].notes.append("no process with this executable and arguments in the baseline")
        }
    }

    private struct Figure {
        var name: String
        var process: (Process) -> UInt64
        var stack: (Stack) -> UInt64
        var format: (UInt64) -> String
    }

    private static var figureList: [Figure] {
        [
            Figure(name: "leaked", process: \.leakedBytes, stack: \.leakedBytes, format: Formatting.bytes),
            Figure(name: "peak", process: \.peakBytes, stack: \.peakBytes, format: Formatting.bytes),
            Figure(
                name: "allocation calls", process: \.allocationCalls, stack: \.allocationCalls,
                format: Formatting.grouped),
        ]
    }

    static func compare(_ now: Process, _ before: Process, verdict: ProcessVerdict, threshold: Double)
        -> [LimitViolation]
    {
        var framesByKey: [String: [ReportFrame]] = [:]
        for stack in verdict.stacks { framesByKey[stack.key] = stack.frames }
        for finding in verdict.findings {
            framesByKey[stackKey(finding.frames), default: finding.frames] = finding.frames
        }
        var violations: [LimitViolation] = []
        for figure in figureList {
            let (old, new) = (figure.process(before), figure.process(now))
            guard new > old else { continue }
            let percent = old == 0 ? Double.infinity : (Double(new) - Double(old)) / Double(old) * 100
            guard percent > threshold else { continue }
            let growth = old == 0 ? "from nothing" : "by \(Formatting.decimal(percent, places: 1))%"
            let message =
                "\(figure.name) grew \(growth) over the baseline (\(figure.format(old)) → \(figure.format(new))), "
                + "more than --fail-on-increase \(Formatting.decimal(threshold, places: 1))%"
            var oldStacks: [String: UInt64] = [:]
            for stack in before.stacks { oldStacks[stack.key, default: 0] &+= figure.stack(stack) }
            let grown = now.stacks.compactMap { stack -> GrownSite? in
                let (was, is_) = (oldStacks[stack.key] ?? 0, figure.stack(stack))
                guard is_ > was else { return nil }
                return GrownSite(key: stack.key, frames: framesByKey[stack.key] ?? [], before: was, after: is_)
            }
            .sorted { ($0.after - $0.before, $1.key) > ($1.after - $1.before, $0.key) }
            violations.append(
                LimitViolation(
                    limit: .baselineIncrease, allowed: threshold, actual: percent, message: message,
                    grownSites: Array(grown.prefix(grownSiteCount))))
        }
        return violations
    }
}
