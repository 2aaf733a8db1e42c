import ArgumentParser
import Foundation
import MallocTraceCheck

/// What `check`'s options ask of every verdict: which processes, which suppressions, which limits, which
/// baseline. Built (and every file read) before the command runs, so that a bad option fails at once.
struct CheckPolicy {
    var processPatterns: [Wildcard]
    var suppressions: SuppressionSet
    var limits: CheckLimits
    var baseline: Baseline?
    var failOnIncrease: Double?
    var toleratesLeaks: Bool

    /// Parses and loads; any problem is a usage error.
    init(_ command: CheckCommand) throws {
        do throws(CheckError) {
            suppressions = try SuppressionSet.load(
                files: command.suppressions, includeDefaults: !command.noDefaultSuppressions)
            limits = CheckLimits(
                maxLeakedBytes: try command.maxLeaked.map(Quantity.parseSize),
                maxPeakBytes: try command.maxPeak.map(Quantity.parseSize),
                maxAllocationCalls: try command.maxAllocations.map(Quantity.parseCount))
            baseline = try command.baseline.map(Baseline.load(fromPath:))
        } catch {
            throw ValidationError(error.description)
        }
        processPatterns = Self.defaultProcessPatterns(command).map(Wildcard.init)
        failOnIncrease = command.failOnIncrease
        toleratesLeaks = command.maxLeaked != nil
    }

    /// `--process`, or for `swift test` its test runner (`*.xctest`): the compiler, the driver and SwiftPM,
    /// which `swift test` starts too, keep memory until exit by design and are not the code under test.
    static func defaultProcessPatterns(_ command: CheckCommand) -> [String] {
        guard command.processPatterns.isEmpty else { return command.processPatterns }
        // `env [VAR=value…] swift test` is `swift test` too.
        var words = command.command[...]
        if words.first.map({ URL(fileURLWithPath: $0).lastPathComponent }) == "env" {
            words = words.dropFirst().drop { $0.contains("=") || $0.hasPrefix("-") }
        }
        let program = words.first.map { URL(fileURLWithPath: $0).lastPathComponent }
        let isSwiftTest = (program == "swift" && words.dropFirst().first == "test") || program == "swift-test"
        return isSwiftTest ? ["*.xctest"] : []
    }

    /// True when `verdict`'s process is one `--process` selects (all without the option).
    func judges(_ verdict: ProcessVerdict) -> Bool {
        guard !processPatterns.isEmpty else { return true }
        let name = verdict.executable.map { URL(fileURLWithPath: $0).lastPathComponent } ?? ""
        return processPatterns.contains { $0.matches(name) }
    }

    /// Suppressions first (limits count what is left), then limits, then the baseline.
    func apply(to verdict: CheckVerdict) -> CheckVerdict {
        var verdict = verdict
        for index in verdict.processes.indices {
            var process = verdict.processes[index]
            let outcome = suppressions.apply(to: process.findings)
            process.findings = outcome.kept
            process.suppressions = outcome.uses
            process.violations += limits.evaluate(process)
            process.leaksAreFailures = !toleratesLeaks
            verdict.processes[index] = process
        }
        if let baseline, let failOnIncrease {
            baseline.apply(to: &verdict, failOnIncreasePercent: failOnIncrease)
        }
        return verdict
    }
}
