public import MallocTraceFormat

/// glibc's mmap threshold over time: where it started and each change, from `mallopt` calls and from frees of
/// mmapped chunks larger than it (glibc's dynamic threshold), replayed in sequence order as glibc applies them.
public struct ThresholdTimeline: Sendable, Equatable {
    public struct Change: Sendable, Equatable {
        public enum Cause: Sendable, Equatable {
            /// `mallopt(M_MMAP_THRESHOLD, value)`: fixed from then on.
            case mallopt
            /// A free of an mmapped chunk of this many bytes, larger than the threshold.
            case freedMappedChunk
        }

        public var time: UInt64
        public var sequence: UInt64
        public var threshold: UInt64
        public var cause: Cause
    }

    public var initial: UInt64
    public var changes: [Change] = []
    /// False once a setting fixed the threshold (mallopt of M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD or
    /// M_MMAP_MAX; the environment at start).
    public var isDynamicAtEnd: Bool

    public var final: UInt64 { changes.last?.threshold ?? initial }

    /// glibc's `mallopt` parameters that fix the threshold (malloc.h).
    static let mmapThreshold: Int64 = -3
    static let fixingParameters: Set<Int64> = [-1, -2, -3, -4]
    static let dynamicMaximum: UInt64 = 32 << 20

    public static func replay(
        details: AllocatorDetails, mallopt: [MalloptCall], releases: [AllocatorView.MappedRelease]
    ) -> ThresholdTimeline {
        var timeline = ThresholdTimeline(
            initial: details.initialMmapThreshold, isDynamicAtEnd: details.thresholdIsDynamic)
        var threshold = details.initialMmapThreshold
        var calls = mallopt[...]
        var frees = releases[...]
        while let next = nextOf(&calls, &frees) {
            switch next {
            case .left(let call):
                guard call.result == 1, fixingParameters.contains(call.parameter) else { continue }
                timeline.isDynamicAtEnd = false
                if call.parameter == mmapThreshold, call.value >= 0 {
                    threshold = UInt64(call.value)
                    timeline.changes.append(
                        Change(time: call.time, sequence: call.sequence, threshold: threshold, cause: .mallopt))
                }
            case .right(let release):
                guard timeline.isDynamicAtEnd, release.chunkBytes > threshold, release.chunkBytes <= dynamicMaximum
                else { continue }
                threshold = release.chunkBytes
                timeline.changes.append(
                    Change(
                        time: release.time, sequence: release.sequence, threshold: threshold, cause: .freedMappedChunk))
            }
        }
        return timeline
    }

    private enum Either<Left, Right> {
        case left(Left), right(Right)
    }

    private static func nextOf(
        _ calls: inout ArraySlice<MalloptCall>, _ frees: inout ArraySlice<AllocatorView.MappedRelease>
    ) -> Either<MalloptCall, AllocatorView.MappedRelease>? {
        switch (calls.first, frees.first) {
        case (nil, nil): return nil
        case (let call?, let free?):
            if call.sequence < free.sequence { return .left(calls.removeFirst()) }
            return .right(frees.removeFirst())
        case (_?, nil): return .left(calls.removeFirst())
        case (nil, _?): return .right(frees.removeFirst())
        }
    }
}

/// The program's own mappings (`run --mmap`), replayed: what was mapped, what is still mapped, and by which
/// call stacks. Unmaps of memory the trace never saw mapped (files, the allocator's own) are ignored.
public struct MappingSummary: Sendable, Equatable {
    public struct Site: Sendable, Equatable {
        public var stackID: UInt32
        public var mmapCalls: UInt64 = 0
        public var bytesMapped: UInt64 = 0
        /// Still mapped at the end, and at the moment the process's mapped bytes peaked.
        public var liveBytes: UInt64 = 0
        public var peakBytes: UInt64 = 0
        /// The most common mapping length of the site.
        public var typicalLength: UInt64 = 0
    }

    public var mmapCalls: UInt64 = 0
    public var munmapCalls: UInt64 = 0
    public var mremapCalls: UInt64 = 0
    public var breakMoves: UInt64 = 0
    public var bytesMapped: UInt64 = 0
    public var liveBytes: UInt64 = 0
    public var peakBytes: UInt64 = 0
    public var peakTime: UInt64 = 0
    /// Net bytes the program itself moved the program break by (brk/sbrk).
    public var breakBytes: Int64 = 0
    /// Sites by live bytes at the end, then bytes mapped.
    public var sites: [Site] = []
    /// Mapped bytes over time (time, live bytes), one point per call.
    public var timeline: [(time: UInt64, bytes: UInt64)] = []
    /// Every change of a site's mapped bytes, in order: for the sites' bytes at any moment.
    private var changes: [(time: UInt64, stackID: UInt32, bytes: Int64)] = []

    public static func == (a: MappingSummary, b: MappingSummary) -> Bool {
        a.mmapCalls == b.mmapCalls && a.bytesMapped == b.bytesMapped && a.liveBytes == b.liveBytes
            && a.sites == b.sites && a.timeline.elementsEqual(b.timeline, by: { $0 == $1 })
    }

    /// Regions a partial unmap is looked for among (see `replay`).
    static let scanLimit = 256
    /// mmap's MAP_FIXED: the new mapping replaces whatever lay there.
    static let mapFixed: UInt32 = 0x10

    private struct Region {
        var start: UInt64
        var end: UInt64
        var stackID: UInt32
    }

    public static func replay(_ events: [MappingEvent]) -> MappingSummary {
        var summary = MappingSummary()
        var regions: [UInt64: Region] = [:]  // by start; few (anonymous mappings of the program itself)
        var sites: [UInt32: Site] = [:]
        var lengths: [UInt32: [UInt64: UInt64]] = [:]
        var now: UInt64 = 0
        var peakChanges = 0
        func add(_ region: Region) {
            regions[region.start] = region
            let bytes = region.end &- region.start
            summary.liveBytes &+= bytes
            sites[region.stackID, default: Site(stackID: region.stackID)].liveBytes &+= bytes
            summary.changes.append((now, region.stackID, Int64(bitPattern: bytes)))
        }
        // Whole mappings are found by their start; a range that is not one is looked for among at most
        // `scanLimit` regions, so that a hostile trace cannot make the replay quadratic.
        func overlapping(_ start: UInt64, _ end: UInt64) -> [Region] {
            if let exact = regions[start], exact.end == end { return [exact] }
            guard regions.count <= Self.scanLimit else { return [] }
            return regions.values.filter { $0.start < end && start < $0.end }
        }
        func unmap(_ start: UInt64, _ end: UInt64) {
            for region in overlapping(start, end) {
                regions[region.start] = nil
                let cutStart = max(region.start, start), cutEnd = min(region.end, end)
                summary.liveBytes &-= cutEnd &- cutStart
                sites[region.stackID]?.liveBytes &-= cutEnd &- cutStart
                summary.changes.append((now, region.stackID, -Int64(bitPattern: cutEnd &- cutStart)))
                if region.start < cutStart {
                    regions[region.start] = Region(start: region.start, end: cutStart, stackID: region.stackID)
                }
                if cutEnd < region.end {
                    regions[cutEnd] = Region(start: cutEnd, end: region.end, stackID: region.stackID)
                }
            }
        }
        for event in events {
            now = event.time
            switch event.call {
            case .mmap:
                summary.mmapCalls &+= 1
                summary.bytesMapped &+= event.length
                sites[event.stackID, default: Site(stackID: event.stackID)].mmapCalls &+= 1
                sites[event.stackID, default: Site(stackID: event.stackID)].bytesMapped &+= event.length
                lengths[event.stackID, default: [:]][event.length, default: 0] &+= 1
                if event.flags & Self.mapFixed != 0 || regions[event.address] != nil {
                    unmap(event.address, event.address &+ event.length)  // over an old mapping
                }
                add(Region(start: event.address, end: event.address &+ event.length, stackID: event.stackID))
            case .munmap:
                summary.munmapCalls &+= 1
                unmap(event.address, event.address &+ event.length)
            case .mremap:
                summary.mremapCalls &+= 1
                guard let old = overlapping(event.address, event.address &+ max(event.length, 1)).first else {
                    continue
                }
                unmap(event.address, event.address &+ event.length)
                add(Region(start: event.newAddress, end: event.newAddress &+ event.newLength, stackID: old.stackID))
            case .moveBreak:
                summary.breakMoves &+= 1
                summary.breakBytes &+= Int64(bitPattern: event.newAddress &- event.address)
            }
            if summary.liveBytes > summary.peakBytes {
                summary.peakBytes = summary.liveBytes
                summary.peakTime = event.time
                peakChanges = summary.changes.count
            }
            summary.timeline.append((event.time, summary.liveBytes))
        }
        var atPeak: [UInt32: Int64] = [:]
        for change in summary.changes.prefix(peakChanges) { atPeak[change.stackID, default: 0] &+= change.bytes }
        for (stack, bytes) in atPeak where bytes > 0 { sites[stack]?.peakBytes = UInt64(bytes) }
        for (stack, counts) in lengths {
            sites[stack]?.typicalLength = counts.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? 0
        }
        summary.sites = sites.values.filter { $0.mmapCalls > 0 }.sorted {
            ($0.liveBytes, $0.bytesMapped, $1.stackID) > ($1.liveBytes, $1.bytesMapped, $0.stackID)
        }
        return summary
    }

    /// Each site's mapped bytes at `time` (after every call at or before it); sites with none left out. O(calls).
    public func liveBytesBySite(at time: UInt64) -> [UInt32: UInt64] {
        var bytes: [UInt32: Int64] = [:]
        for change in changes where change.time <= time { bytes[change.stackID, default: 0] &+= change.bytes }
        return bytes.compactMapValues { $0 > 0 ? UInt64($0) : nil }
    }

    /// Live mapped bytes at `time` (the last call at or before it).
    public func liveBytes(at time: UInt64) -> UInt64 {
        let count = pointsUpTo(time, in: timeline) { $0.time }
        return count == 0 ? 0 : timeline[count - 1].bytes
    }
}

/// The process's resident set at one moment beside what malloc had live then, with the difference split into
/// named parts. Resident bytes count pages in memory; the parts count address space: a part may be partly not
/// resident, so the parts are estimates and the last one takes what is left (never below zero).
public struct MemoryGap: Sendable, Equatable {
    public enum Part: String, Sendable, CaseIterable {
        /// Usable bytes of live blocks beyond the requested ones, and glibc's chunk headers.
        case allocatorOverhead = "allocator_overhead"
        /// brk heap not held by live main-arena chunks: free chunks, bins and the top chunk glibc keeps for reuse
        /// (fragmentation and caches).
        case freeHeap = "free_heap"
        /// Anonymous mappings the program made itself (pymalloc arenas, custom allocators); needs `--mmap`.
        case directMappings = "direct_mappings"
        /// The rest: code, data and libraries, thread stacks, thread arenas' free space, untraced mappings.
        case other
    }

    /// "end" (the process's last figures) or "rss peak" (the largest resident sample).
    public var moment: String
    public var time: UInt64
    public var residentBytes: UInt64
    public var liveRequestedBytes: UInt64
    public var liveChunkBytes: UInt64
    public var breakBytes: UInt64
    /// Resident bytes not explained by live requested bytes (0 when the heap is larger).
    public var gapBytes: UInt64 { residentBytes > liveRequestedBytes ? residentBytes - liveRequestedBytes : 0 }
    public var parts: [(part: Part, bytes: UInt64)]
    /// What the direct mappings were at that moment, by cause (filled in by the report, which reads stacks).
    public var mappingCauses: [(cause: String, bytes: UInt64)] = []

    public static func == (a: MemoryGap, b: MemoryGap) -> Bool {
        a.moment == b.moment && a.time == b.time && a.residentBytes == b.residentBytes
            && a.parts.elementsEqual(b.parts, by: { $0 == $1 })
    }

    /// Splits the gap at one moment. `mapped` is nil when the trace did not record the program's mappings.
    public static func split(
        moment: String, time: UInt64, resident: UInt64, breakBytes: UInt64, live: ChunkSources, mapped: UInt64?
    ) -> MemoryGap {
        let total = live.total
        var left = resident > total.requestedBytes ? resident - total.requestedBytes : 0
        func take(_ bytes: UInt64) -> UInt64 {
            let taken = min(bytes, left)
            left -= taken
            return taken
        }
        var parts: [(Part, UInt64)] = []
        parts.append((.allocatorOverhead, take(total.chunkBytes &- total.requestedBytes)))
        let mainChunks = live.mainArena.chunkBytes
        parts.append((.freeHeap, take(breakBytes > mainChunks ? breakBytes - mainChunks : 0)))
        if let mapped { parts.append((.directMappings, take(mapped))) }
        parts.append((.other, left))
        return MemoryGap(
            moment: moment, time: time, residentBytes: resident, liveRequestedBytes: total.requestedBytes,
            liveChunkBytes: total.chunkBytes, breakBytes: breakBytes, parts: parts)
    }
}

extension AllocatorView {
    /// The live chunks at `time`: the last point of the series at or before it.
    public func live(at time: UInt64) -> LiveChunks {
        let count = pointsUpTo(time, in: timeline) { $0.time }
        return count == 0 ? LiveChunks() : timeline[count - 1]
    }
}

/// How many points of a series in time order lie at or before `time`. O(log n).
func pointsUpTo<Point>(_ time: UInt64, in points: [Point], time pointTime: (Point) -> UInt64) -> Int {
    var low = 0, high = points.count
    while low < high {
        let middle = (low + high) / 2
        if pointTime(points[middle]) <= time { low = middle + 1 } else { high = middle }
    }
    return low
}
