import Foundation
import Testing

/// External readers of our exports: Go's pprof (built once per test run from Debian's sources), heaptrack_print,
/// headless Chromium. Each test that needs one is skipped, saying why, when it is missing.
enum ExternalTools {
    static func which(_ name: String) -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return (paths + ["/usr/bin", "/usr/lib/go/bin"]).map { "\($0)/\(name)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// `pprof` built with `go build github.com/google/pprof` from golang-github-google-pprof-dev (≈ 1 min, once
    /// per machine: the binary is kept in the temporary directory); nil when go or the sources are missing.
    static let pprof: String? = {
        let sources = "/usr/share/gocode/src/github.com/google/pprof"
        guard let go = which("go"), FileManager.default.fileExists(atPath: sources) else { return nil }
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("malloctrace-test-pprof")
        let binary = cache.appendingPathComponent("pprof").path
        if FileManager.default.isExecutableFile(atPath: binary) { return binary }
        try? FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        let partial = binary + ".\(getpid())"
        let result = try? runProgram(
            go, ["build", "-o", partial, "github.com/google/pprof"],
            environment: [
                "GOPATH": "/usr/share/gocode", "GO111MODULE": "off", "GOFLAGS": "-mod=mod",
                "GOCACHE": cache.appendingPathComponent("gocache").path,
            ], timeout: 600)
        guard result?.status == 0 else { return nil }
        rename(partial, binary)
        return binary
    }()

    static let heaptrackPrint = which("heaptrack_print")
    static let chromium = which("chromium") ?? which("chromium-browser")
}

/// `flamegraph` and `export`, read by the tools that read those formats.
@Suite struct ExportTests {
    /// Runs the CLI and expects success.
    private func cli(_ arguments: [String]) throws -> ProcessResult {
        let result = try runProgram(Products.cli, arguments)
        #expect(result.status == 0, "malloctrace \(arguments.joined(separator: " ")): \(result.stderr)")
        return result
    }

    private func foldedLines(_ trace: String, _ metric: String) throws -> [String: Int] {
        let output = try cli(["flamegraph", trace, "--folded", "--metric", metric]).stdout
        var values: [String: Int] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            let path = parts.dropLast().joined(separator: " ")
            values[path.split(separator: ";").suffix(2).joined(separator: ";")] = Int(parts.last ?? "")
        }
        return values
    }

    @Test func foldedStacksHaveExactValues() throws {
        let scratch = try Scratch()
        let (_, leaks) = try traceFixture("patterns", ["leaks"], in: scratch)
        #expect(
            try foldedLines(leaks, "leaked") == [
                "pattern_leaks;leak_hundreds": 700, "pattern_leaks;leak_calloc_33": 330,
            ])
        let (_, peak) = try traceFixture("patterns", ["peak"], in: scratch)
        #expect(
            try foldedLines(peak, "peak") == ["pattern_peak;peak_big_block": 20000, "pattern_peak;peak_block": 5000])
        // peak_block's two call sites (10 x 1000 B, then 24,999 B) are one frame path.
        #expect(
            try foldedLines(peak, "allocated") == [
                "pattern_peak;peak_big_block": 20000, "pattern_peak;peak_block": 34999,
            ])
        #expect(try foldedLines(peak, "calls") == ["pattern_peak;peak_big_block": 1, "pattern_peak;peak_block": 11])
        // Every line starts at the outermost frame.
        let output = try cli(["flamegraph", peak, "--folded"]).stdout
        #expect(output.split(separator: "\n").allSatisfy { $0.hasPrefix("_start;") }, "\(output)")
    }

    @Test func badInputIsOneLineAndNonZero() throws {
        let scratch = try Scratch()
        for arguments in [
            ["flamegraph", scratch.path("missing.mtrace")],
            ["flamegraph", "x.mtrace", "--metric", "nonsense"],
            ["export", "x.mtrace", "--format", "nonsense"],
            ["export", "a.mtrace", "b.mtrace", "--format", "pprof", "-o", scratch.path("file.pb.gz")],
            ["export", "a.mtrace", "--format", "heaptrack", "--merge"],
        ] {
            let result = try runProgram(Products.cli, arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains("Error:") || result.stderr.contains("malloctrace:"), "\(result.stderr)")
        }
        let (_, trace) = try traceFixture("patterns", ["peak"], in: scratch)
        let full = try runProgram(Products.cli, ["flamegraph", trace, "-o", "/dev/full"])
        #expect(full.status != 0)
        let unwritable = try runProgram(Products.cli, ["export", trace, "--format", "pprof", "-o", "/proc/nope/x"])
        #expect(unwritable.status != 0 && unwritable.stderr.contains("cannot write"), "\(unwritable.stderr)")
    }

    /// The SVG's script runs in a browser: it draws one box per frame and titles them with bytes and percent.
    @Test(.enabled(if: ExternalTools.chromium != nil, "chromium is not installed (apt-get install chromium)"))
    func flameGraphScriptRunsInABrowser() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["peak"], in: scratch)
        let svg = scratch.path("peak.svg")
        _ = try cli(["flamegraph", trace, "-o", svg])
        let dom = try runProgram(
            try #require(ExternalTools.chromium),
            ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://" + svg], timeout: 120)
        #expect(dom.stdout.contains("data-drawn=\"8\""), "\(dom.stdout.prefix(2000))")
        #expect(dom.stdout.contains("data-total=\"25000\""))
        #expect(dom.stdout.contains("peak_big_block — 19.5 KiB (20,000 bytes), 1 block, 80.00%"))
        #expect(!dom.stdout.contains("mt-nojs"))
    }

    /// `pprof -top` of our profile names the same functions with the same bytes as our JSON report.
    @Test(.enabled(if: ExternalTools.pprof != nil, "go or golang-github-google-pprof-dev is not installed"))
    func pprofReadsOurProfile() throws {
        let pprof = try #require(ExternalTools.pprof)
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["peak"], in: scratch)
        let profile = scratch.path("peak.pb.gz")
        _ = try cli(["export", trace, "--format", "pprof", "-o", profile])
        let report = try jsonReport(trace, arguments: ["--group-by", "function"])

        func top(_ sampleIndex: String) throws -> [String: Int] {
            let result = try runProgram(pprof, ["-top", "-unit=B", "-sample_index=" + sampleIndex, profile])
            #expect(result.status == 0, "\(result.stderr)")
            var flat: [String: Int] = [:]
            for line in result.stdout.split(separator: "\n") {
                let columns = line.split(separator: " ", omittingEmptySubsequences: true)
                guard columns.count == 6, columns[0].hasSuffix("B"), let bytes = Int(columns[0].dropLast()), bytes > 0
                else { continue }
                flat[String(columns[5])] = bytes
            }
            return flat
        }
        func expected(_ key: String) -> [String: Int] {
            var byFunction: [String: Int] = [:]
            for site in report.objects(key) { byFunction[topFunction(site) ?? "?"] = site.integer("bytes") }
            return byFunction
        }
        #expect(try top("inuse_space") == expected("peak_contributors"))
        #expect(try top("alloc_space") == expected("most_bytes_allocated"))
        #expect(try top("inuse_space") == ["peak_big_block": 20000, "peak_block": 5000])

        // --at exit: in use means leaked.
        let (_, leaks) = try traceFixture("patterns", ["leaks"], in: scratch)
        _ = try cli(["export", leaks, "--format", "pprof", "--at", "exit", "-o", profile])
        #expect(try top("inuse_space") == ["leak_hundreds": 700, "leak_calloc_33": 330])

        // Inlined calls are lines of one location: pprof shows the inlined function.
        let raw = try runProgram(pprof, ["-raw", profile])
        #expect(raw.stdout.contains("[FN][FL][LN][IN]"), "\(raw.stdout)")
    }

    /// Traces of several processes: one profile each in a directory, or one merged profile.
    @Test(.enabled(if: ExternalTools.pprof != nil, "go or golang-github-google-pprof-dev is not installed"))
    func followedChildrenExportTogether() throws {
        let pprof = try #require(ExternalTools.pprof)
        let scratch = try Scratch()
        // The tracer directly, as ProcessEndTests does: the parent and its forked child each write a trace.
        let run = try runProgram(
            Products.fixture("patterns"), ["fork"],
            environment: [
                "LD_PRELOAD": Products.preloadLibrary, "MALLOCTRACE_OUTPUT": scratch.path("f.%p.mtrace"),
                "MALLOCTRACE_FOLLOW_CHILDREN": "1",
            ])
        #expect(run.status == 0, "\(run.stderr)")
        let traces = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).filter {
            $0.hasSuffix(".mtrace")
        }.map(scratch.path)
        try #require(traces.count == 2)
        _ = try cli(["export"] + traces + ["--format", "pprof", "-o", scratch.path("profiles") + "/"])
        let files = try FileManager.default.contentsOfDirectory(atPath: scratch.path("profiles"))
        #expect(files.count == 2 && files.allSatisfy { $0.hasSuffix(".pb.gz") }, "\(files)")
        var leaked = 0
        for trace in traces { leaked += try jsonReport(trace).object("summary").integer("leaked_bytes") ?? 0 }
        _ = try cli(
            ["export"] + traces + ["--format", "pprof", "--merge", "--at", "exit", "-o", scratch.path("all.pb.gz")])
        let top = try runProgram(pprof, ["-top", "-unit=B", "-sample_index=inuse_space", scratch.path("all.pb.gz")])
        #expect(top.stdout.contains("Total samples = \(leaked)B"), "\(top.stdout)")
    }

    /// Every field speedscope's schema requires, with the types it requires.
    @Test func speedscopeFileHasEveryRequiredField() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["peak"], in: scratch)
        let output = try cli(["export", trace, "--format", "speedscope"]).stdout
        let document = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(document.string("$schema") == "https://www.speedscope.app/file-format-schema.json")
        let frames = try #require(document.object("shared")["frames"] as? [[String: Any]])
        #expect(frames.allSatisfy { $0["name"] is String })
        let profiles = document.objects("profiles")
        #expect(profiles.count == 5)
        for profile in profiles {
            #expect(profile.string("type") == "sampled")
            #expect(profile["name"] is String)
            #expect(["bytes", "none"].contains(profile.string("unit")))
            let samples = try #require(profile["samples"] as? [[Int]])
            let weights = try #require(profile["weights"] as? [Int])
            #expect(samples.count == weights.count)
            #expect(samples.allSatisfy { $0.allSatisfy { $0 >= 0 && $0 < frames.count } })
            #expect(profile.integer("startValue") == 0)
            #expect(profile.integer("endValue") == weights.reduce(0, +))
        }
        #expect(profiles.first?.integer("endValue") == 25000)
        #expect(profiles.first?.string("unit") == "bytes")
        // Samples run from the outermost frame in.
        let firstSample = try #require((profiles.first?["samples"] as? [[Int]])?.first)
        #expect(frames[firstSample[0]]["name"] as? String == "_start")
    }

    /// heaptrack_print reads our heaptrack file and prints the same peak and leaked totals as our report.
    @Test(
        .enabled(
            if: ExternalTools.heaptrackPrint != nil, "heaptrack_print is not installed (apt-get install heaptrack)"),
        arguments: ["peak", "leaks"])
    func heaptrackPrintReadsOurFile(pattern: String) throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", [pattern], in: scratch)
        let file = scratch.path("heaptrack.\(pattern).txt")
        _ = try cli(["export", trace, "--format", "heaptrack", "-o", file])
        let printed = try runProgram(try #require(ExternalTools.heaptrackPrint), [file])
        #expect(printed.status == 0, "\(printed.stderr)")
        let summary = try jsonReport(trace).object("summary")
        /// heaptrack's own rounding: powers of 1000, two decimals (`25.00K`), bytes as `B`.
        func heaptrackBytes(_ value: Int) -> String {
            if value < 1000 { return "\(value)B" }
            let units = ["K", "M", "G"]
            var scaled = Double(value) / 1000
            var unit = 0
            while scaled >= 1000 && unit < 2 {
                scaled /= 1000
                unit += 1
            }
            return String(format: "%.2f", scaled) + units[unit]
        }
        let peak = try #require(summary.integer("peak_bytes"))
        let leaked = try #require(summary.integer("leaked_bytes"))
        #expect(printed.stdout.contains("peak heap memory consumption: \(heaptrackBytes(peak))\n"), "\(printed.stdout)")
        #expect(printed.stdout.contains("total memory leaked: \(heaptrackBytes(leaked))\n"), "\(printed.stdout)")
        let calls = try #require(summary.integer("allocation_calls"))
        #expect(printed.stdout.contains("calls to allocation functions: \(calls) "), "\(printed.stdout)")
    }

    /// The HTML report is one file whose script runs in a browser: the DOM after it ran holds the totals of
    /// our JSON report and the drawn flame graph.
    @Test(.enabled(if: ExternalTools.chromium != nil, "chromium is not installed (apt-get install chromium)"))
    func htmlReportRendersInABrowser() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["leaks"], in: scratch)
        let page = scratch.path("report.html")
        _ = try cli(["report", trace, "--format", "html", "-o", page])
        let html = try String(contentsOfFile: page, encoding: .utf8)
        // Nothing loads from elsewhere: no links, no sources.
        #expect(!html.contains("<link") && !html.contains("src="))
        let dom = try runProgram(
            try #require(ExternalTools.chromium),
            ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://" + page], timeout: 120
        ).stdout
        let summary = try jsonReport(trace).object("summary")
        let peak = try #require(summary.integer("peak_bytes"))
        #expect(dom.contains("data-ready=\"yes\""), "the script did not run: \(dom.prefix(1000))")
        #expect(dom.contains("id=\"fg-root\"") && dom.contains("data-total=\"\(peak)\""), "\(dom.prefix(3000))")
        #expect(dom.contains("1.0 KiB"))  // leaked: 7 x 100 + 10 x 33 = 1,030 bytes
        #expect(dom.contains("17 blocks from 2 sites"))
        #expect(dom.contains("leak_hundreds (patterns.c:"))
        #expect(dom.contains("Heap in use over time") && dom.contains("Allocation sizes"))
    }

    /// With a leak scan, the page lists the blocks live at exit by kind, as the JSON report counts them.
    @Test func htmlReportShowsLeakKinds() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("leakkinds", ["chain"], in: scratch, options: ["--leak-kinds"])
        let html = try cli(["report", trace, "--format", "html"]).stdout
        #expect(html.contains("Blocks live at exit, by leak kind"))
        // chain: 1,009 B definite, 1,010 + 1,011 B indirect, both counted.
        #expect(
            html.contains("<tr><td>definite</td><td class=\"num\">1009 B</td><td class=\"num\">1</td><td>yes</td></tr>")
        )
        #expect(
            html.contains(
                "<tr><td>indirect</td><td class=\"num\">2.0 KiB</td><td class=\"num\">2</td><td>yes</td></tr>"))
    }

    /// A heaptrack file named `.gz` is gzip-compressed, which heaptrack_print reads by its name.
    @Test(
        .enabled(
            if: ExternalTools.heaptrackPrint != nil, "heaptrack_print is not installed (apt-get install heaptrack)"))
    func heaptrackFileNamedGzIsCompressed() throws {
        let scratch = try Scratch()
        let (_, trace) = try traceFixture("patterns", ["peak"], in: scratch)
        let file = scratch.path("heaptrack.peak.gz")
        _ = try cli(["export", trace, "--format", "heaptrack", "-o", file])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        #expect(Array(bytes.prefix(2)) == [0x1F, 0x8B])
        let printed = try runProgram(try #require(ExternalTools.heaptrackPrint), [file])
        #expect(printed.stdout.contains("peak heap memory consumption: 25.00K\n"), "\(printed.stdout)")
    }
}
