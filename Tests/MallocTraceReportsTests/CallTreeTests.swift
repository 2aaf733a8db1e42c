import MallocTraceAnalysis
import MallocTraceFormat
import Testing

@testable import MallocTraceReports

private func frame(_ function: String, address: UInt64, inlined: Bool = false) -> ReportFrame {
    var frame = ReportFrame(address: address, module: "/usr/bin/app", offset: address - 0x1000)
    frame.function = function
    frame.isInlined = inlined
    return frame
}

private func figures(peak: UInt64 = 0, leaked: UInt64 = 0, allocated: UInt64 = 0, calls: UInt64 = 1) -> SiteFigures {
    var figures = SiteFigures()
    figures.peakBytes = peak
    figures.peakBlocks = peak > 0 ? 1 : 0
    figures.leakedBytes = leaked
    figures.leakedBlocks = leaked > 0 ? 1 : 0
    figures.bytesAllocated = allocated
    figures.allocationCalls = calls
    return figures
}

/// Stacks outermost first: main → work → alloc_a, main → work → alloc_b, main → tiny.
private func sampleProfile(tinyBytes: UInt64 = 1) -> StackProfile {
    let main = frame("main", address: 0x1100), work = frame("work", address: 0x1200)
    return StackProfile(
        stacks: [
            ProfileStack(
                stackID: 1, frames: [main, work, frame("alloc_a", address: 0x1300)],
                figures: figures(peak: 600, allocated: 1000, calls: 10)),
            ProfileStack(
                stackID: 2, frames: [main, work, frame("alloc_b", address: 0x1400)],
                figures: figures(peak: 400, leaked: 50, allocated: 400, calls: 2)),
            ProfileStack(
                stackID: 3, frames: [main, frame("tiny", address: 0x1500)],
                figures: figures(allocated: tinyBytes, calls: 1)),
        ])
}

@Suite struct CallTreeTests {
    @Test func nodesCarryTheFiguresOfEveryStackThroughThem() throws {
        let tree = CallTree(profile: sampleProfile())
        #expect(tree.nodes.count == 6)  // all, main, work, alloc_a, alloc_b, tiny
        #expect(tree.root.total.peakBytes == 1000)
        let work = try #require(tree.nodes.firstIndex { $0.name == "work" })
        #expect(tree.nodes[work].total.bytesAllocated == 1400)
        #expect(tree.nodes[work].own.bytesAllocated == 0)
        #expect(tree.path(to: work).map { tree.nodes[$0].name } == ["main", "work"])
    }

    @Test func foldedLinesStartAtTheOutermostFrame() {
        let tree = CallTree(profile: sampleProfile())
        #expect(tree.folded(by: .peak) == "main;work;alloc_a 600\nmain;work;alloc_b 400\n")
        #expect(tree.folded(by: .calls) == "main;tiny 1\nmain;work;alloc_a 10\nmain;work;alloc_b 2\n")
        #expect(tree.folded(by: .leaked) == "main;work;alloc_b 50\n")
    }

    @Test func smallNodesAreMergedIntoOther() throws {
        // tiny: 1 of 1,401 bytes allocated, 1 of 13 calls (7.7%): small only below a 10% threshold.
        let kept = CallTree(profile: sampleProfile(), threshold: 0.05)
        #expect(kept.nodes.contains { $0.name == "tiny" })
        let merged = CallTree(profile: sampleProfile(), threshold: 0.1)
        #expect(!merged.nodes.contains { $0.name == "tiny" })
        let other = try #require(merged.nodes.first { $0.name == CallTree.otherName })
        #expect(other.total.allocationCalls == 1 && other.mergedNodes == 1)
        #expect(merged.mergedNodeCount == 1)
        // Figures are kept: the root and main still count the merged stack.
        #expect(merged.root.total == CallTree(profile: sampleProfile()).root.total)
    }

    @Test func theNodeCountIsBounded() {
        var stacks: [ProfileStack] = []
        for index in 0..<500 {
            let leaf = frame("f\(index)", address: 0x2000 + UInt64(index))
            stacks.append(
                ProfileStack(
                    stackID: UInt32(index + 1), frames: [frame("main", address: 0x1100), leaf],
                    figures: figures(allocated: UInt64(index + 1), calls: 1)))
        }
        let tree = CallTree(profile: StackProfile(stacks: stacks), maximumNodes: 50)
        #expect(tree.nodes.count <= 50)
        #expect(tree.root.total.bytesAllocated == 500 * 501 / 2)
        #expect(tree.nodes.contains { $0.name == "f499" })
    }

    @Test func inlinedFramesOfOneAddressFormOneLocation() {
        let stack = ProfileStack(
            stackID: 1,
            frames: [
                frame("main", address: 0x1100), frame("caller", address: 0x1200),
                frame("inlined_helper", address: 0x1200, inlined: true), frame("leaf", address: 0x1300),
            ], figures: figures(allocated: 8))
        #expect(
            stack.locations.map { $0.map { $0.function ?? "" } } == [["leaf"], ["inlined_helper", "caller"], ["main"]])
    }

    @Test func protobufVarintsAndFields() {
        var writer = ProtobufWriter()
        writer.varint(300)
        #expect(writer.bytes == [0xAC, 0x02])
        writer = ProtobufWriter()
        writer.uint(1, 0)  // zero scalars are left out
        writer.string(6, "")  // repeated strings are not
        writer.packed(2, [1, 150])
        #expect(writer.bytes == [0x32, 0x00, 0x12, 0x03, 0x01, 0x96, 0x01])
    }

    @Test func pprofProfileStartsWithTheSampleTypes() throws {
        let bytes = PprofExporter.profile(sampleProfile())
        // Field 1 (sample_type), length-delimited: type and unit indexes 1 and 2 ("alloc_objects", "count").
        #expect(Array(bytes.prefix(6)) == [0x0A, 0x04, 0x08, 0x01, 0x10, 0x02])
        let gzip = try Gzip.compress(bytes)
        #expect(Array(gzip.prefix(2)) == [0x1F, 0x8B])
    }

    @Test func heapTimelineKeepsTheHighestPointInBoundedBuckets() {
        var timeline = HeapTimeline(maximumPoints: 10)
        var events: [AllocatorEvent] = []
        for index in 0..<1000 {
            let time = UInt64(index) * 1_000_000
            events.append(
                AllocatorEvent(
                    kind: .allocation, function: .malloc, sequence: UInt64(2 * index), threadID: 1, time: time,
                    size: 100, address: 0x10000, stackID: 1))
            events.append(
                AllocatorEvent(
                    kind: .release, function: .free, sequence: UInt64(2 * index + 1), threadID: 1, time: time + 10,
                    size: 0, address: 0x10000, stackID: 1))
        }
        timeline.consume(events.span)
        #expect(timeline.points.count <= 10)
        #expect(timeline.points.allSatisfy { $0.liveBytes == 100 })
    }
}
