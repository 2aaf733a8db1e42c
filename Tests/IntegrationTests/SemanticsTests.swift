import Foundation
import Testing

/// libc's allocator must behave exactly the same under tracing. `fixture-semantics` (Tests/Fixtures/semantics.c)
/// checks every interposed function at its edges itself and exits 0 only if all checks passed; the traced run
/// must also print the same observations, and the trace must hold the allocations made around `main`.
///
/// Sampling takes other paths through the hooks (calls that go straight to libc, frees of blocks that were
/// not recorded, reallocs of which one half was): the same checks run at one sample per 4 KiB, and at one per
/// byte, where every block the leak checks look at (111 B and more) is always sampled.
@Suite(.serialized) struct SemanticsTests {
    @Test(arguments: [[], ["--sample-rate", "1"], ["--sample-rate", "4096"]])
    func libcSemanticsAreUnchangedUnderTracing(options: [String]) throws {
        let untraced = try runProgram(Products.fixture("semantics"), [], timeout: 30)
        #expect(untraced.status == 0, "the fixture's self-checks fail even untraced: \(untraced.stderr)")
        #expect(untraced.stderr.isEmpty)
        #expect(untraced.stdout.hasSuffix(" checks passed\n"))

        let scratch = try Scratch()
        let (traced, trace) = try traceFixture("semantics", [], in: scratch, options: options)
        #expect(traced.status == 0, "self-checks failed under tracing: \(traced.stderr)")
        #expect(traced.signal == nil)
        #expect(traced.stdout == untraced.stdout)
        let foreignLines = traced.stderr.split(separator: "\n").filter { !$0.hasPrefix("malloctrace: ") }
        #expect(foreignLines.isEmpty, "\(foreignLines)")

        let report = try jsonReport(trace, top: 50)
        #expect(report.object("trace")["end_reason"] as? String == "exit")
        #expect(report.object("summary").integer("unmatched_frees") == 0)
        if options.last == "4096" { return }  // small blocks may or may not be sampled
        let leaks = report.objects("leaks")
        var leakedBytesByFunction: [String: Int] = [:]
        for site in leaks {
            leakedBytesByFunction[topFunction(site) ?? "?", default: 0] += site.integer("bytes") ?? 0
        }
        // Allocated before main, after main, in a pthread key destructor and in a dlopen'ed library.
        #expect(leakedBytesByFunction["allocate_in_constructor"] == 111)
        #expect(leakedBytesByFunction["allocate_in_destructor"] == 222)
        #expect(leakedBytesByFunction["allocate_in_key_destructor"] == 555)
        #expect(leakedBytesByFunction["library_allocate"] == 666)
        // Freed after main, in the key destructor and by the library's destructor at dlclose.
        #expect(leakedBytesByFunction["allocate_for_destructor"] == nil)
        #expect(leakedBytesByFunction["thread_with_key"] == nil)
        #expect(leakedBytesByFunction["library_loaded"] == nil)
        let librarySite = leaks.first { topFunction($0) == "library_allocate" }
        let module = librarySite?.objects("stack").first?["module"] as? String
        #expect(module?.hasSuffix("/fixture-liballocating.so") == true)
    }
}
