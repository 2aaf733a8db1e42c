import MallocTraceFormat
import MallocTraceReports
import Testing

@testable import MallocTraceCheck

@Suite struct TextRendererTests {
    @Test func leakSanitizerShape() {
        let expected = """
            ==100== ERROR: malloctrace: detected memory leaks in /usr/bin/app --fast (pid 100)
            ==100== note: trace is truncated: 12 bytes of a chunk are missing

            Direct leak of 48 byte(s) in 1 object(s) allocated from:
                #0 make_node /src/app/leak.c:12 (app+0x1139)
                #1 main /src/app/leak.c:30 (app+0x1139)

            Indirect leak of 32 byte(s) in 2 object(s) allocated from:
                #0 Tree<int*>::grow() "&" <x> /work/src/tree.cpp:7 (app+0x2000)
                #1 libplugin.so+0x42

            Limit exceeded: leaked 80 B is over --max-leaked 64 B

            -----------------------------------------------------
            Suppressions used:
              count      bytes template
                  1          8 leak:*tls_get_addr* (built-in)
            -----------------------------------------------------

            Not counted: 72704 byte(s) in 1 reachable object(s).

            SUMMARY: malloctrace: 80 byte(s) leaked in 3 allocation(s).

            ==101== malloctrace: OK: /usr/bin/tool (pid 101): no leaks, 2 suppressed (96 byte(s))

            SUMMARY: malloctrace: 80 byte(s) leaked in 3 allocation(s) in 2 processes (1 failed).

            """
        #expect(LeakSanitizerTextRenderer.render(Samples.verdict) == expected)
    }

    @Test func singleProcessHasNoTotalAndNotesAMissingScan() {
        var process = Samples.clean
        process.hasLeakScan = false
        process.suppressions = []
        process.processID = nil
        process.uncountedBytes = [.possible: 16]
        process.uncountedBlocks = [.possible: 1]
        let text = LeakSanitizerTextRenderer.render(CheckVerdict(processes: [process], countedKinds: [.definite]))
        #expect(
            text == """
                ==?== malloctrace: OK: /usr/bin/tool: no leaks; not counted: 16 byte(s) in 1 possible object(s)
                ==?== note: the trace has no leak scan: every block live at exit counts as a direct leak

                """)
    }

    @Test func limitsOnlyAndGrownStacks() {
        var process = Samples.clean
        process.suppressions = []
        let frames = [frame("grow", file: "/src/g.c", line: 3)]
        process.violations = [
            LimitViolation(
                limit: .baselineIncrease, allowed: 10, actual: 50, message: "peak grew by 50.0% over the baseline",
                grownSites: [GrownSite(key: "grow @app", frames: frames, before: 100, after: 150)])
        ]
        #expect(
            LeakSanitizerTextRenderer.render(process) == """
                ==101== ERROR: malloctrace: limits exceeded in /usr/bin/tool (pid 101)

                Limit exceeded: peak grew by 50.0% over the baseline
                    stack grew by 50 (100 → 150):
                        #0 grow /src/g.c:3 (app+0x1139)

                SUMMARY: malloctrace: 0 byte(s) leaked in 0 allocation(s).

                """)
    }
}
