import Foundation
import MallocTraceAnalysis
import MallocTraceFormat
import MallocTraceReports
import Testing

@Suite struct ThreadTests {
    /// 4 threads, 8000 blocks, each freed by another thread than its allocator: the merged order must never
    /// put a free before its allocation, so nothing from the fixture leaks and no free is unmatched.
    @Test func crossThreadFreesBalanceExactly() throws {
        let scratch = try Scratch()
        let (run, trace) = try traceFixture("patterns", ["threads"], in: scratch)
        #expect(run.status == 0, "\(run.stderr)")
        let reader = try TraceReader(path: trace)
        var analyzer = HeapAnalyzer()
        var previousSequence: UInt64 = 0
        var ordered = true
        reader.forEachEvent { event in
            if event.sequence <= previousSequence { ordered = false }
            previousSequence = event.sequence
            analyzer.consume(event)
        }
        #expect(ordered)
        let analysis = analyzer.result()
        #expect(analysis.summary.unmatchedFrees == 0)
        #expect(analysis.summary.freeCalls == 8000)
        #expect(analysis.summary.threadCount == 5)
        let resolver = FrameResolver(modules: reader.modules)
        let fixtureSites = analysis.sites.filter { site in
            guard let first = reader.stacks[site.stackID]?.first else { return false }
            return resolver.frame(for: first).function == "thread_block"
        }
        #expect(fixtureSites.map(\.allocationCalls).reduce(0, +) == 8000)
        let expectedBytes: UInt64 = 2000 * (16 + 32 + 48 + 64)
        #expect(fixtureSites.map(\.bytesAllocated).reduce(0, +) == expectedBytes)
        #expect(fixtureSites.map(\.leakedBlocks).reduce(0, +) == 0)
        #expect(Set(reader.threadIDs).count == 5)
    }
}
