import Foundation
import Testing

/// The fast unwinder (cached .eh_frame rules) must give exactly libunwind's stacks. MALLOCTRACE_UNWIND=verify
/// captures every stack both ways and prints "unwinder check: N stacks, F by libunwind, D different from
/// libunwind" at exit.
@Suite(.serialized) struct UnwinderTests {
    private struct Check {
        var stacks: Int
        var fallbacks: Int
        var mismatches: Int
    }

    private func verify(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Check {
        let scratch = try Scratch()
        var variables = environment
        variables["LD_PRELOAD"] = Products.preloadLibrary
        variables["MALLOCTRACE_OUTPUT"] = scratch.path("verify.mtrace")
        variables["MALLOCTRACE_UNWIND"] = "verify"
        let result = try runProgram(program, arguments, environment: variables)
        let line = try #require(result.stderr.split(separator: "\n").first { $0.contains("unwinder check:") })
        let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        try #require(numbers.count == 3, "unexpected line: \(line)")
        return Check(stacks: numbers[0], fallbacks: numbers[1], mismatches: numbers[2])
    }

    @Test(arguments: ["leaks", "threads", "all-functions"])
    func cFixtureStacksMatchWithoutFallback(pattern: String) throws {
        let check = try verify(Products.fixture("patterns"), [pattern])
        #expect(check.stacks > 0)
        #expect(check.mismatches == 0)
        #expect(check.fallbacks == 0)
    }

    @Test func cPlusPlusStacksMatch() throws {
        let check = try verify(Products.fixture("stl"), [])
        #expect(check.stacks > 20000)
        #expect(check.mismatches == 0)
        #expect(check.fallbacks * 100 < check.stacks)
    }

    @Test func pythonStacksMatch() throws {
        let python = try #require(
            ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let check = try verify(
            python, ["-c", "import json; print(json.dumps({str(i): [i] * 3 for i in range(2000)})[:10])"],
            environment: ["PYTHONMALLOC": "malloc"])
        #expect(check.stacks > 1000)
        #expect(check.mismatches == 0)
    }

    @Test func swiftStacksMatch() throws {
        let check = try verify(Products.cli, ["--help"])
        #expect(check.stacks > 1000)
        #expect(check.mismatches == 0)
    }
}
