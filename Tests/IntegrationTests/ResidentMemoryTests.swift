import Foundation
import Testing

/// The process's resident set and program break: the peak at exit (PROCESS_STATS) and samples over time
/// (RSS_SAMPLE), end to end through `malloctrace run` and `report`.
@Suite struct ResidentMemoryTests {
    private static let mebibyte = 1 << 20
    private static let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// The fixture writes its own `ru_maxrss` after touching 64 MiB: the report's figure is the same one,
    /// taken by the tracer at exit (a page more at most, if the tracer's exit touched one).
    @Test func peakRSSIsTheProcesssOwnMaximum() throws {
        let scratch = try Scratch()
        let own = scratch.path("maxrss")
        let trace = scratch.path("peak.mtrace")
        let result = try runProgram(Products.cli, ["run", "-o", trace, "--", Products.fixture("rss"), "peak", own])
        #expect(result.status == 0, "\(result.stderr)")
        let fixtureFigure = try #require(Int(try String(contentsOfFile: own, encoding: .utf8)))
        #expect(fixtureFigure >= 64 * Self.mebibyte)
        let summary = try jsonReport(trace).object("summary")
        let peak = try #require(summary.integer("peak_rss_bytes"))
        #expect(peak >= fixtureFigure && peak - fixtureFigure <= Self.page, "tracer \(peak), fixture \(fixtureFigure)")

        let text = try runProgram(Products.cli, ["report", trace, "--sections", "summary"])
        let line = try #require(text.stdout.split(separator: "\n").first { $0.contains("peak RSS") })
        #expect(line.contains("MiB (resident at exit "), "\(line)")
    }

    @Test func samplesFollowTheResidentSetOverTime() throws {
        let scratch = try Scratch()
        let (result, trace) = try traceFixture("rss", ["grow"], in: scratch)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try jsonReport(trace)
        let samples = report.objects("rss_samples")
        // 64 steps of 15 ms: about one sample per step (at most one per 10 ms), plus the state at exit.
        #expect(samples.count >= 20 && samples.count <= 200, "\(samples.count) samples")
        let times = samples.compactMap { $0.integer("time_ns") }
        let resident = samples.compactMap { $0.integer("rss_bytes") }
        #expect(times.count == samples.count && resident.count == samples.count)
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(samples.allSatisfy { $0.integer("brk_bytes") != nil })
        // The 64 blocks of 1 MiB are all resident before they are freed; the last point is after the frees. The
        // kernel's RSS counters are per-CPU (Linux 6.2+): statm and ru_maxrss may differ by a few batches of pages.
        let peak = try #require(report.object("summary").integer("peak_rss_bytes"))
        let largest = try #require(resident.max())
        #expect(
            largest >= 60 * Self.mebibyte && largest <= peak + Self.mebibyte, "largest sample \(largest), peak \(peak)")
        #expect(try #require(resident.last) < largest - 32 * Self.mebibyte)
        #expect(try #require(times.last) <= report.object("trace").integer("duration_ns") ?? 0)
    }

    @Test func samplingCanBeTurnedOffButThePeakStays() throws {
        let scratch = try Scratch()
        let (result, trace) = try traceFixture("rss", ["grow"], in: scratch, environment: ["MALLOCTRACE_RSS": "0"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try jsonReport(trace)
        #expect(report.objects("rss_samples").count == 1)  // the state at exit only
        #expect((report.object("summary").integer("peak_rss_bytes") ?? 0) >= 64 * Self.mebibyte)
    }

    @Test func aBadSettingIsOneLineAndNoTrace() throws {
        let scratch = try Scratch()
        let (result, _) = try traceFixture("rss", ["grow"], in: scratch, environment: ["MALLOCTRACE_RSS": "yes"])
        #expect(result.stderr.contains("malloctrace: MALLOCTRACE_RSS must be 0 or 1, not 'yes'; tracing is off"))
    }
}
