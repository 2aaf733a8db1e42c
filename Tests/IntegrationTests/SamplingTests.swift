import Foundation
import MallocTraceFormat
import Testing

/// `malloctrace run --sample-rate`: sampling by bytes, with estimates scaled back up in reports.
@Suite struct SamplingTests {
    /// fixture-patterns sampling (Tests/Fixtures/patterns.c) at one sample per 4 KiB, with a fixed seed so
    /// that every run samples the same calls. Blocks of 1 MiB are always sampled, so its leak is exact; the
    /// totals are estimates from about 14,000 samples (standard error about 1%), checked within 6%.
    @Test func estimatesTotalsAndFindsLargeLeaksExactly() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture(
            "patterns", ["sampling"], in: scratch, options: ["--sample-rate", "4K"],
            environment: ["MALLOCTRACE_SAMPLE_SEED": "7"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("samples, one per 4.0 KiB), "), "the summary marks estimates: \(run.stderr)")

        let reader = try TraceReader(path: trace)
        #expect(reader.process?.sampleRate == 4096)
        let report = try jsonReport(trace, top: 20)
        let sampling = report.object("sampling")
        #expect(sampling.integer("rate_bytes") == 4096)
        let samples = try #require(sampling.integer("samples"))
        #expect(samples > 5000 && samples < 40_000, "\(samples) samples of 402,280 calls")
        let estimatedCalls = Double(try #require(sampling.integer("estimated_allocation_calls")))
        #expect(abs(estimatedCalls / 402_280 - 1) < 0.06, "estimated \(estimatedCalls) calls")

        let summary = report.object("summary")
        #expect(summary.integer("allocation_calls") == samples)
        let bytes = Double(try #require(summary.integer("bytes_allocated")))
        #expect(abs(bytes / 198_614_784 - 1) < 0.06, "estimated \(bytes) bytes")
        // Only the frees of sampled blocks are recorded, and each finds its block.
        #expect(summary.integer("unmatched_frees") == 0)
        #expect(summary.integer("leaked_bytes") == 8 << 20)
        #expect(summary.integer("leaked_blocks") == 8)
        let leaks = report.objects("leaks")
        #expect(leaks.count == 1)
        #expect(leaks.first.map(topFunction) == "sampled_leak")
        // What samples cannot tell is left out rather than guessed.
        #expect((report["size_histogram"] as? [Any])?.isEmpty == true)
        #expect((report["most_temporary_allocations"] as? [Any])?.isEmpty == true)
        #expect(summary.integer("temporary_allocations") == 0)
    }

    /// At one sample per byte every block of 100 B or more is sampled (probability 1 − e^−100), so the leak
    /// report is the unsampled one, byte for byte; the churn's frees all find their blocks.
    @Test func everyLargeEnoughBlockIsSampledAtRateOne() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["leaks"], in: scratch, options: ["--sample-rate", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonReport(trace)
        #expect(report.object("summary").integer("unmatched_frees") == 0)
        var leakedByFunction: [String: (bytes: Int, blocks: Int)] = [:]
        for site in report.objects("leaks") {
            leakedByFunction[topFunction(site) ?? "?"] = (site.integer("bytes") ?? 0, site.integer("blocks") ?? 0)
        }
        #expect(leakedByFunction["leak_hundreds"]?.bytes == 700)
        #expect(leakedByFunction["leak_hundreds"]?.blocks == 7)
        #expect(leakedByFunction["leak_calloc_33"]?.bytes == 330)
        #expect(leakedByFunction["leak_calloc_33"]?.blocks == 10)
        #expect(leakedByFunction.count == 2, "\(leakedByFunction)")
    }

    @Test func textReportSaysWhatIsEstimated() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture(
            "patterns", ["sampling"], in: scratch, options: ["--sample-rate", "4096"],
            environment: ["MALLOCTRACE_SAMPLE_SEED": "7"])
        #expect(run.status == 0, "\(run.stderr)")
        let text = try runProgram(Products.cli, ["report", trace, "--top", "1"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("  sampling   one allocation per 4.0 KiB allocated, on average"))
        #expect(text.stdout.contains("leaked            ≈8.0 MiB (8,388,608 B) in 8 blocks"))
        #expect(text.stdout.contains("temporary         not measured in a sampled trace"))
    }

    @Test func diffWarnsThatASampledSideIsEstimated() throws {
        let scratch = try Scratch()
        let (_, sampled) = try traceFixture("patterns", ["leaks"], in: scratch, options: ["--sample-rate", "1"])
        let (_, full) = try traceFixture("patterns", ["leaks"], in: scratch)
        let diff = try runProgram(Products.cli, ["diff", full, sampled])
        #expect(diff.status == 0, "\(diff.stderr)")
        let warnings = diff.stdout.split(separator: "\n").filter { $0.hasPrefix("  warning  sampled trace") }
        #expect(warnings.count == 1, "\(diff.stdout)")
    }

    @Test(arguments: ["0", "-5", "12X", "5G", "4294967296"])
    func rejectsBadRates(_ rate: String) throws {
        let result = try runProgram(Products.cli, ["run", "--sample-rate", rate, "--", "/bin/true"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--sample-rate"))
    }

    @Test func acceptsBinarySuffixes() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["peak"], in: scratch, options: ["--sample-rate", "512K"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try TraceReader(path: trace).process?.sampleRate == 512 * 1024)
    }

    /// A malformed MALLOCTRACE_SAMPLE_RATE turns tracing off with one line; the program runs unchanged.
    @Test func badRateInTheEnvironmentTurnsTracingOff() throws {
        let scratch = try Scratch()
        let trace = scratch.path("never.mtrace")
        let result = try runProgram(
            Products.fixture("patterns"), ["peak"],
            environment: [
                "LD_PRELOAD": Products.preloadLibrary, "MALLOCTRACE_OUTPUT": trace, "MALLOCTRACE_SAMPLE_RATE": "lots",
            ])
        #expect(result.status == 0)
        #expect(
            result.stderr
                == "malloctrace: MALLOCTRACE_SAMPLE_RATE must be a whole number of bytes from 0 (record every call)"
                + " to 4294967295, not 'lots'; tracing is off\n")
        #expect(!FileManager.default.fileExists(atPath: trace))
    }
}
