import Foundation
import MallocTraceFormat
import MallocTraceReports
import Testing

@testable import MallocTraceCheck

func process(
    _ executable: String = "/usr/bin/app", arguments: [String] = [], pid: UInt32 = 100, findings: [LeakFinding] = [],
    peak: UInt64 = 0, calls: UInt64 = 0, stacks: [StackFigures] = []
) -> ProcessVerdict {
    ProcessVerdict(
        tracePath: "/tmp/app.\(pid).mtrace", processID: pid, executable: executable,
        arguments: [executable] + arguments,
        endDescription: "exited normally", hasLeakScan: true, findings: findings, peakBytes: peak,
        allocationCalls: calls, stacks: stacks)
}

@Suite struct LimitsTests {
    @Test func everyLimitOverItsValue() {
        let limits = CheckLimits(maxLeakedBytes: 64, maxPeakBytes: 64 << 20, maxAllocationCalls: 1000)
        let violations = limits.evaluate(
            process(findings: [simpleFinding("f", bytes: 96)], peak: 80 << 20, calls: 1001))
        #expect(violations.map(\.limit) == [.leakedBytes, .peakBytes, .allocationCalls])
        #expect(
            violations.map(\.message) == [
                "leaked 96 B is over --max-leaked 64 B",
                "peak 80.0 MiB (83,886,080 bytes) is over --max-peak 64.0 MiB (67,108,864 bytes)",
                "1,001 allocation calls is over --max-allocations 1,000",
            ])
        #expect(violations[1].allowed == Double(64 << 20) && violations[1].actual == Double(80 << 20))
    }

    @Test func equalIsWithinAndNilIsNoLimit() {
        #expect(CheckLimits(maxLeakedBytes: 96).evaluate(process(findings: [simpleFinding("f", bytes: 96)])).isEmpty)
        #expect(CheckLimits().evaluate(process(findings: [simpleFinding("f")], peak: .max, calls: .max)).isEmpty)
    }
}

@Suite struct BaselineTests {
    static func stack(_ function: String, peak: UInt64, calls: UInt64) -> StackFigures {
        let frames = [frame(function), frame("main")]
        return StackFigures(key: Baseline.stackKey(frames), frames: frames, peakBytes: peak, allocationCalls: calls)
    }

    static let before = CheckVerdict(
        processes: [
            process(
                "/build/app", arguments: ["--fast"], pid: 1, findings: [simpleFinding("old_leak", bytes: 100)],
                peak: 1000, calls: 50,
                stacks: [stack("a", peak: 600, calls: 10), stack("b", peak: 400, calls: 40)]),
            process("/build/tool", pid: 2, peak: 10, calls: 1),
        ], countedKinds: [.definite, .indirect])

    @Test func savesAndLoads() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("baseline-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let baseline = Baseline(Self.before)
        try baseline.save(toPath: path)
        #expect(try Baseline.load(fromPath: path) == baseline)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("\"malloctrace_baseline\" : 1"))
        #expect(text.contains("\"peak_bytes\" : 1000"))
        #expect(baseline.processes[0].stacks.count == 3)
    }

    @Test func loadErrors() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("baseline-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let cases: [(String, CheckError)] = [
            (
                "{\"malloctrace_baseline\": 9, \"processes\": []}",
                .unsupportedBaselineVersion(path: path, found: 9, supported: 1)
            ),
            ("{\"processes\": []}", .invalidBaseline(path: path, reason: "missing 'malloctrace_baseline'")),
            ("[1,", .invalidBaseline(path: path, reason: "not valid JSON")),
            (
                "{\"malloctrace_baseline\": 1, \"processes\": [{\"executable\": 3}]}",
                .invalidBaseline(path: path, reason: "wrong type at 'processes[0].executable'")
            ),
        ]
        for (text, expected) in cases {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: expected) { try Baseline.load(fromPath: path) }
        }
        #expect {
            try Baseline.load(fromPath: "/nonexistent/b.json")
        } throws: { error in
            guard case .unreadableFile = error as? CheckError else { return false }
            return true
        }
    }

    @Test func growthOverTheThresholdNamesTheStacks() {
        let baseline = Baseline(Self.before)
        let current = CheckVerdict(
            processes: [
                process("/ci/other/path/tool", pid: 7, peak: 10, calls: 1),
                process(
                    "/ci/app", arguments: ["--fast"], pid: 8, findings: [simpleFinding("old_leak", bytes: 100)],
                    peak: 1200, calls: 52,
                    stacks: [Self.stack("a", peak: 610, calls: 10), Self.stack("b", peak: 590, calls: 42)]),
                process("/ci/app", arguments: ["--slow"], pid: 9, peak: 1, calls: 1),
            ], countedKinds: [.definite])
        let comparison = baseline.compare(current, failOnIncreasePercent: 10)
        #expect(comparison.unmatched == [2])
        #expect(comparison.violations[0].isEmpty)
        let violations = comparison.violations[1]
        #expect(violations.count == 1)
        #expect(
            violations.first?.message
                == "peak grew by 20.0% over the baseline (1000 B → 1.2 KiB), more than --fail-on-increase 10.0%")
        #expect(violations.first?.grownSites.map(\.before) == [400, 600])
        #expect(violations.first?.grownSites.map(\.after) == [590, 610])
        #expect(violations.first?.grownSites.first?.frames.first?.function == "b")
        // 4% more calls is within 10%, and nothing else grew.
        #expect(baseline.compare(current, failOnIncreasePercent: 25).violations[1].isEmpty)
    }

    @Test func newLeaksGrowFromNothing() {
        let baseline = Baseline(CheckVerdict(processes: [process()], countedKinds: [.definite]))
        var current = CheckVerdict(
            processes: [process(findings: [simpleFinding("fresh", bytes: 64)])], countedKinds: [.definite])
        baseline.apply(to: &current, failOnIncreasePercent: 0)
        let violation = current.processes[0].violations.first
        #expect(
            violation?.message
                == "leaked grew from nothing over the baseline (0 B → 64 B), more than --fail-on-increase 0.0%")
        #expect(violation?.grownSites.map(\.after) == [64])
        #expect(violation?.limit == .baselineIncrease)
    }
}
