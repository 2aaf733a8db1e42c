import MallocTraceCheck
import MallocTraceFormat
import MallocTraceReports

/// Hand-built verdicts for the renderer tests.
enum Samples {
    static let libstdcxx = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"

    static let failing = ProcessVerdict(
        tracePath: "/tmp/malloctrace.app.100.mtrace", processID: 100, executable: "/usr/bin/app",
        arguments: ["/usr/bin/app", "--fast"], endDescription: "exited normally", hasLeakScan: true,
        findings: [
            simpleFinding("make_node"),
            finding(
                .indirect, bytes: 32, blocks: 2,
                [
                    frame("operator new(unsigned long)", module: libstdcxx, offset: 0xa0),
                    frame("Tree<int*>::grow() \"&\" <x>", file: "/work/src/tree.cpp", line: 7, offset: 0x2000),
                    frame(nil, module: "/usr/lib/libplugin.so", offset: 0x42),
                ]),
        ],
        uncountedBytes: [.reachable: 72704], uncountedBlocks: [.reachable: 1],
        suppressions: [
            SuppressionUse(name: "leak:*tls_get_addr*", origin: "built-in", findings: 1, bytes: 8, blocks: 1)
        ],
        violations: [
            LimitViolation(
                limit: .leakedBytes, allowed: 64, actual: 80, message: "leaked 80 B is over --max-leaked 64 B")
        ],
        peakBytes: 80 << 20, allocationCalls: 1234, notes: ["trace is truncated: 12 bytes of a chunk are missing"])

    static let clean = ProcessVerdict(
        tracePath: "/tmp/malloctrace.tool.101.mtrace", processID: 101, executable: "/usr/bin/tool", arguments: [],
        endDescription: "exited normally", hasLeakScan: true, findings: [],
        suppressions: [
            SuppressionUse(name: "ld.so-allocations", origin: "built-in", findings: 2, bytes: 96, blocks: 3)
        ],
        peakBytes: 4096, allocationCalls: 3)

    static let verdict = CheckVerdict(processes: [failing, clean], countedKinds: [.definite, .indirect])
}
