import Testing

@testable import MallocTraceReports

@Suite struct ProgressTests {
    final class Capture {
        var text = ""
    }

    @Test func drawsAfterTheDelayAndErasesAtTheEnd() {
        let capture = Capture()
        let meter = ProgressMeter(enabled: true, delay: 0) { capture.text += $0 }
        meter.update("reading", done: 1_500_000, total: 3_000_000, unit: "events")
        #expect(capture.text == "\r\u{1B}[Kmalloctrace: reading 1.5 M events of 3.0 M (50%)")
        meter.update("reading", done: 2_000_000, total: 3_000_000, unit: "events")
        #expect(!capture.text.contains("2.0 M"))  // at most ten redraws a second
        meter.finish()
        #expect(capture.text.hasSuffix("\r\u{1B}[K"))
    }

    @Test func silentWhenDisabledOrEarly() {
        let capture = Capture()
        ProgressMeter(enabled: false, delay: 0) { capture.text += $0 }.update("x", done: 1, total: nil, unit: "y")
        let early = ProgressMeter(enabled: true, delay: 60) { capture.text += $0 }
        early.update("x", done: 1, total: nil, unit: "y")
        early.finish()
        #expect(capture.text.isEmpty)
    }

    /// A crafted trace can claim any sequence numbers: `done * 100` used to overflow (a trap) near 2^64.
    @Test func hugeCountsDoNotOverflowThePercentage() {
        let capture = Capture()
        let meter = ProgressMeter(enabled: true, delay: 0) { capture.text += $0 }
        meter.update("reading", done: .max - 1, total: 7, unit: "events")
        #expect(capture.text.hasSuffix("(100%)"))
    }
}
