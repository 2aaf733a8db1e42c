import MallocTraceFormat
import Testing

@testable import MallocTraceAnalysis

/// The allocator's view from synthetic events: usable against requested bytes, sources, the live chunks, the
/// threshold's replay, the program's own mappings and the gap's split.
@Suite struct AllocatorAnalysisTests {
    private static let glibc = AllocatorDetails(
        isGlibc: true, libcVersion: "2.36", recordsUsableSizes: true, recordsChunkFlags: true, recordsMappings: true,
        initialMmapThreshold: 131_072, thresholdIsDynamic: true)

    private func allocation(
        _ sequence: UInt64, size: UInt64, slack: UInt32, at address: UInt64, chunk: ChunkFlags = [.known],
        thread: UInt32 = 1, stack: UInt32 = 1
    ) -> AllocatorEvent {
        var event = AllocatorEvent(
            kind: .allocation, function: .malloc, sequence: sequence, threadID: thread, time: sequence * 1_000,
            size: size, address: address, stackID: stack)
        event.usableSlack = slack
        event.chunk = chunk
        return event
    }

    private func release(_ sequence: UInt64, at address: UInt64) -> AllocatorEvent {
        AllocatorEvent(
            kind: .release, function: .free, sequence: sequence, threadID: 1, time: sequence * 1_000, size: 0,
            address: address, stackID: 0)
    }

    @Test func blocksAreCountedBySourceAndLiveAtThePeak() {
        var view = AllocatorView(details: Self.glibc)
        view.consume(allocation(1, size: 25, slack: 15, at: 0x1000))
        view.consume(allocation(2, size: 200_000, slack: 688, at: 0x9000, chunk: [.known, .mmapped]))
        view.consume(allocation(3, size: 100, slack: 4, at: 0x2000, chunk: [.known, .nonMainArena], thread: 2))
        view.consume(release(4, at: 0x9000))
        view.consume(allocation(5, size: 8, slack: 16, at: 0x3000))
        var unknown = allocation(6, size: 8, slack: 0, at: 0x4000, chunk: [])
        unknown.chunk = []
        view.consume(unknown)
        view.finish()
        #expect(view.sources.mainArena == ChunkTally(calls: 2, requested: 33, usable: 64, chunk: 80))
        #expect(view.sources.mmapped == ChunkTally(calls: 1, requested: 200_000, usable: 200_688, chunk: 200_704))
        #expect(view.sources.threadArenas == ChunkTally(calls: 1, requested: 100, usable: 104, chunk: 112))
        #expect(view.unknownCalls == 1)
        #expect(view.atPeak.sequence == 3 && view.atPeak.sources.mmapped.calls == 1)
        #expect(view.live.sources.total.requestedBytes == 133 && view.live.sources.mmapped.calls == 0)
        #expect(view.mappedReleases == [AllocatorView.MappedRelease(sequence: 4, time: 4_000, chunkBytes: 200_704)])
        #expect(view.threads[2]?.threadArenas.calls == 1)
        // 25 B sits 1 byte into the 48-byte class; 200,000 B is far above the threshold, not a near miss.
        #expect(view.candidates.count == 1)
        #expect(view.candidates.first?.value.kind == .sizeClass && view.candidates.first?.value.boundary == 24)
    }

    @Test func thresholdFollowsFreesAndMallopt() {
        let releases = [
            AllocatorView.MappedRelease(sequence: 2, time: 2, chunkBytes: 135_168),
            AllocatorView.MappedRelease(sequence: 3, time: 3, chunkBytes: 100_000),  // smaller: no change
            AllocatorView.MappedRelease(sequence: 6, time: 6, chunkBytes: 1_052_672),  // after mallopt: fixed
        ]
        let mallopt = [MalloptCall(sequence: 5, time: 5, parameter: -3, value: 65_536, result: 1)]
        let timeline = ThresholdTimeline.replay(details: Self.glibc, mallopt: mallopt, releases: releases)
        #expect(timeline.changes.map(\.threshold) == [135_168, 65_536])
        #expect(timeline.changes.map(\.cause) == [.freedMappedChunk, .mallopt])
        #expect(!timeline.isDynamicAtEnd && timeline.final == 65_536)
        let failed = [MalloptCall(sequence: 1, time: 1, parameter: -3, value: 1 << 30, result: 0)]
        #expect(ThresholdTimeline.replay(details: Self.glibc, mallopt: failed, releases: []).isDynamicAtEnd)
    }

    @Test func mappingsAreReplayedWithPartialUnmaps() {
        let events = [
            MappingEvent(
                call: .mmap, sequence: 1, time: 10, threadID: 1, stackID: 7, address: 0x10_0000, length: 0x10_0000),
            MappingEvent(
                call: .mmap, sequence: 2, time: 20, threadID: 1, stackID: 8, address: 0x40_0000, length: 0x1000),
            MappingEvent(
                call: .munmap, sequence: 3, time: 30, threadID: 1, stackID: 0, address: 0x18_0000, length: 0x8_0000),
            MappingEvent(
                call: .munmap, sequence: 4, time: 40, threadID: 1, stackID: 0, address: 0x90_0000, length: 0x1000),
            MappingEvent(
                call: .mremap, sequence: 5, time: 50, threadID: 1, stackID: 0, address: 0x40_0000, length: 0x1000,
                newAddress: 0x50_0000, newLength: 0x3000),
            MappingEvent(
                call: .moveBreak, sequence: 6, time: 60, threadID: 1, stackID: 9, address: 0x1000, length: 0,
                newAddress: 0x3000),
        ]
        let summary = MappingSummary.replay(events)
        #expect(summary.mmapCalls == 2 && summary.munmapCalls == 2 && summary.mremapCalls == 1)
        #expect(summary.peakBytes == 0x10_1000 && summary.peakTime == 20)
        let live: UInt64 = 0x8_0000 + 0x3000
        #expect(summary.liveBytes == live)
        #expect(summary.breakBytes == 0x2000)
        #expect(summary.liveBytes(at: 35) == 0x8_1000)
        #expect(summary.liveBytesBySite(at: 55) == [7: 0x8_0000, 8: 0x3000])
        #expect(summary.sites.map(\.stackID) == [7, 8])
    }

    @Test func theGapIsSplitInOrderAndAddsUp() {
        var live = ChunkSources()
        live.mainArena = ChunkTally(calls: 10, requested: 1_000, usable: 1_200, chunk: 1_300)
        live.mmapped = ChunkTally(calls: 1, requested: 200_000, usable: 200_688, chunk: 200_704)
        let gap = MemoryGap.split(
            moment: "end", time: 1, resident: 10_000_000, breakBytes: 135_168, live: live, mapped: 4_000_000)
        let gapBytes: UInt64 = 10_000_000 - 201_000
        #expect(gap.gapBytes == gapBytes)
        #expect(gap.parts.map(\.part) == [.allocatorOverhead, .freeHeap, .directMappings, .other])
        let other: UInt64 = 10_000_000 - 201_000 - 1_004 - 133_868 - 4_000_000
        let expected: [UInt64] = [1_004, 133_868, 4_000_000, other]
        #expect(gap.parts.map(\.bytes) == expected)
        let small = MemoryGap.split(moment: "end", time: 1, resident: 1_000, breakBytes: 0, live: live, mapped: nil)
        #expect(small.gapBytes == 0 && small.parts.allSatisfy { $0.bytes == 0 })
    }
}

extension ChunkTally {
    init(calls: UInt64, requested: UInt64, usable: UInt64, chunk: UInt64) {
        self.init()
        self.calls = calls
        requestedBytes = requested
        usableBytes = usable
        chunkBytes = chunk
    }
}
