import Foundation
import Testing

/// `run --profile-every`: profiles written while the program runs, read by Go's pprof, whose in-use figures are
/// those of `report --to` at the same moments.
@Suite struct PeriodicProfileTests {
    /// pprof's `-top` of one sample type: the total and the flat bytes per function.
    private func top(_ pprof: String, _ profile: String, _ sampleIndex: String) throws -> (Int, [String: Int]) {
        let result = try runProgram(pprof, ["-top", "-unit=B", "-sample_index=" + sampleIndex, profile])
        #expect(result.status == 0, "\(result.stderr)")
        var total = -1
        var flat: [String: Int] = [:]
        for line in result.stdout.split(separator: "\n") {
            if let range = line.range(of: #"of (\d+)B total"#, options: .regularExpression) {
                total = Int(line[range].dropFirst(3).dropLast("B total".count)) ?? -1
            }
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            guard columns.count == 6, columns[0].hasSuffix("B"), let bytes = Int(columns[0].dropLast()), bytes > 0
            else { continue }
            flat[String(columns[5])] = bytes
        }
        if total < 0 && result.stdout.contains("0 of 0 total") { total = 0 }
        return (total, flat)
    }

    @Test(.enabled(if: ExternalTools.pprof != nil, "go or golang-github-google-pprof-dev is not installed"))
    func profilesMatchTheReportAtTheSameMoments() throws {
        let pprof = try #require(ExternalTools.pprof)
        let scratch = try Scratch()
        let directory = scratch.path("profiles")
        let (run, trace) = try traceFixture(
            "phases", [], in: scratch,
            options: ["--no-compress", "--profile-every", "1s", "--profile-dir", directory])
        #expect(run.status == 0, "\(run.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        // Three whole intervals while it ran (about 3.5 s) and the last part when it ended; no temporary file left.
        #expect(names.count == 4, "\(names)")
        let pattern = #"^fixture-phases\.[0-9]+\.00000[1-4]\.[0-9]{8}T[0-9]{6}Z\.pb\.gz$"#
        for name in names { #expect(name.range(of: pattern, options: .regularExpression) != nil, "\(name)") }

        let expected: [[String: Int]] = [
            ["phase_one": 100_000],
            ["phase_one": 60_000, "phase_two": 150_000],
            ["phase_one": 60_000, "phase_three": 500_000],
            ["phase_one": 60_000, "phase_three": 500_000],
        ]
        let allocated: [[String: Int]] = [
            ["phase_one": 100_000], ["phase_two": 150_000], ["phase_three": 500_000], [:],
        ]
        var previousTicks = 0
        for (index, name) in names.enumerated() {
            let profile = directory + "/" + name
            let comments = try runProgram(pprof, ["-comments", profile]).stdout
            #expect(comments.contains("exe " + Products.fixture("phases")), "\(comments)")
            #expect(comments.contains("process start: "), "\(comments)")
            let to = try #require(
                comments.range(of: #"--to [0-9.e+-]+"#, options: .regularExpression).map {
                    String(comments[$0].dropFirst(5))
                }, "\(comments)")
            if index < 3 { #expect(to == "\(index + 1).0") }

            let (inUse, inUseByFunction) = try top(pprof, profile, "inuse_space")
            let report = try jsonReport(trace, arguments: ["--to", to]).object("summary")
            #expect(inUse == report.integer("leaked_bytes"), "profile \(name) against report --to \(to)")
            #expect(inUse > 0)
            let phases = inUseByFunction.filter { $0.key.hasPrefix("phase_") }
            #expect(phases == expected[index], "profile \(index + 1): \(inUseByFunction)")
            // The ticker's blocks are in use too, more of them at every interval's end.
            let ticks = inUseByFunction["tick_block"] ?? 0
            #expect(ticks > previousTicks, "profile \(index + 1)")
            previousTicks = ticks

            let (_, allocatedByFunction) = try top(pprof, profile, "alloc_space")
            #expect(allocatedByFunction.filter { $0.key.hasPrefix("phase_") } == allocated[index], "\(index + 1)")
        }
    }

    @Test func optionsAreCheckedBeforeTheProgramStarts() throws {
        let scratch = try Scratch()
        let missingDirectory = try runProgram(Products.cli, ["run", "--profile-every", "1s", "--", "/bin/true"])
        #expect(missingDirectory.status != 0)
        #expect(missingDirectory.stderr.contains("--profile-every needs --profile-dir"), "\(missingDirectory.stderr)")
        let tooShort = try runProgram(
            Products.cli, ["run", "--profile-every", "10ms", "--profile-dir", scratch.path("p"), "--", "/bin/true"])
        #expect(tooShort.status != 0)
        #expect(tooShort.stderr.contains("profile-every"), "\(tooShort.stderr)")
        let unwritable = try runProgram(
            Products.cli, ["run", "--profile-every", "1s", "--profile-dir", "/proc/self/nope", "--", "/bin/true"])
        #expect(unwritable.status != 0)
        #expect(unwritable.stderr.contains("cannot create the profile directory"), "\(unwritable.stderr)")
    }
}
