import Foundation
import Testing

/// Programs whose malloc is jemalloc or mimalloc, preloaded or linked, give the same exact figures as with
/// glibc's malloc (Debian's libjemalloc2 and libmimalloc2.0; each case is skipped, saying why, without them).
@Suite struct AllocatorTests {
    static let libraries = "/usr/lib/x86_64-linux-gnu/"
    static let jemalloc = libraries + "libjemalloc.so.2"
    static let mimalloc = libraries + "libmimalloc.so.2"
    static let compiler = ExternalTools.which("cc") ?? ExternalTools.which("clang")
    static var haveAllocators: Bool {
        FileManager.default.fileExists(atPath: jemalloc) && FileManager.default.fileExists(atPath: mimalloc)
    }

    /// Tests/Fixtures/allocators.c, compiled as the plugin compiles fixtures and linked against `library`
    /// (by its path: the -dev package is not needed).
    private func linkedFixture(_ library: String, in scratch: Scratch) throws -> String {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/allocators.c").path
        let output = scratch.path("allocators-" + URL(fileURLWithPath: library).lastPathComponent)
        let compiler = try #require(Self.compiler)
        let result = try runProgram(
            compiler, ["-O0", "-g", "-fno-builtin", source, "-o", output, library, "-lpthread"])
        try #require(result.status == 0, "\(result.stderr)")
        // The allocator really is the program's: the loader lists it among its libraries.
        let ldd = try runProgram("/usr/bin/ldd", [output])
        #expect(ldd.stdout.contains(URL(fileURLWithPath: library).lastPathComponent), "\(ldd.stdout)")
        return output
    }

    /// Traces `program` (with `preload` in LD_PRELOAD, behind the tracer as `run` puts it) with leak kinds and
    /// returns the summary of the fixture's own allocations.
    private func figures(_ program: String, preload: String?, in scratch: Scratch) throws -> [String: Int] {
        let trace = scratch.path("\(UUID().uuidString.prefix(8)).mtrace")
        let result = try runProgram(
            Products.cli, ["run", "--no-compress", "--leak-kinds", "-o", trace, "--", program],
            environment: preload.map { ["LD_PRELOAD": $0] } ?? [:])
        #expect(result.status == 0, "\(program) with \(preload ?? "glibc"): \(result.stderr)")
        let summary = try jsonReport(trace, arguments: ["--include", "work_"]).object("summary")
        let keys = [
            "allocation_calls", "free_calls", "bytes_allocated", "peak_bytes", "leaked_bytes", "leaked_blocks",
            "unmatched_frees",
        ]
        var figures: [String: Int] = [:]
        for key in keys { figures[key] = summary.integer(key) }
        figures["definite_blocks"] = summary.object("leak_kinds").object("definite").integer("blocks")
        return figures
    }

    @Test(.enabled(if: haveAllocators && compiler != nil, "libjemalloc2, libmimalloc2.0 or a C compiler is missing"))
    func jemallocAndMimallocGiveTheSameFiguresAsGlibc() throws {
        let scratch = try Scratch()
        let fixture = Products.fixture("allocators")
        // The numbers in allocators.c's top comment; 7 blocks leaked, each found definitely lost by the scan.
        let expected = [
            "allocation_calls": 3165, "free_calls": 3142, "bytes_allocated": 10_654_954, "peak_bytes": 8_425_198,
            "leaked_bytes": 8638, "leaked_blocks": 7, "unmatched_frees": 0, "definite_blocks": 7,
        ]
        #expect(try figures(fixture, preload: nil, in: scratch) == expected, "glibc")
        for library in [Self.jemalloc, Self.mimalloc] {
            let name = URL(fileURLWithPath: library).lastPathComponent
            #expect(try figures(fixture, preload: library, in: scratch) == expected, "\(name) preloaded")
            let linked = try linkedFixture(library, in: scratch)
            #expect(try figures(linked, preload: nil, in: scratch) == expected, "\(name) linked")
        }
    }
}
