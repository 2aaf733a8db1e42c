import MallocTraceAnalysis
import MallocTraceFormat

/// The `allocator` member of the JSON report (`report --allocator`), described in docs/json-schema.md.
enum AllocatorJSONRenderer {
    static func render(_ view: AllocatorReport) -> JSON {
        .object([
            "allocator": details(view.details),
            "usable_sizes_recorded": .bool(view.hasUsableSizes),
            "unrecorded_allocations": .unsigned(view.unknownCalls),
            "totals": tally(view.sources.total),
            "served_from": sources(view.sources),
            "at_heap_peak": live(view.atPeak),
            "at_end": live(view.liveAtEnd),
            "mmap_threshold": .optional(view.threshold, threshold),
            "size_classes": .array(
                view.sizeClasses.map { size in
                    .object([
                        "min_size": .unsigned(size.minimumSize), "max_size": .unsigned(size.maximumSize),
                        "chunks": tally(size.tally),
                    ])
                }),
            "waste_sites": .array(
                view.wasteSites.map { site in
                    .object([
                        "stack_id": .unsigned(UInt64(site.stackID)), "chunks": tally(site.sources.total),
                        "served_from": sources(site.sources), "stack": .array(site.stack.map(JSONRenderer.frame)),
                    ])
                }),
            "boundary_candidates": .array(view.candidates.map(candidate)),
            "per_thread": .array(
                view.threads.map { thread in
                    .object(["thread_id": .unsigned(UInt64(thread.threadID)), "served_from": sources(thread.sources)])
                }),
            "rss_gap": .array(view.gaps.map(gap)),
            "mappings": .optional(view.mappings) { mappings(view, $0) },
            "timeline": .array(view.timeline.map(point)),
        ])
    }

    static func details(_ details: AllocatorDetails?) -> JSON {
        .optional(details) { details in
            .object([
                "name": .string(details.isGlibc ? "glibc" : "other"),
                "libc_version": .optional(details.libcVersion, JSON.string),
                "records_usable_sizes": .bool(details.recordsUsableSizes),
                "records_chunk_flags": .bool(details.recordsChunkFlags),
                "records_mappings": .bool(details.recordsMappings),
                "initial_mmap_threshold": .unsigned(details.initialMmapThreshold),
                "threshold_is_dynamic": .bool(details.thresholdIsDynamic),
            ])
        }
    }

    static func tally(_ tally: ChunkTally) -> JSON {
        .object([
            "calls": .unsigned(tally.calls), "requested_bytes": .unsigned(tally.requestedBytes),
            "usable_bytes": .unsigned(tally.usableBytes), "chunk_bytes": .unsigned(tally.chunkBytes),
            "wasted_bytes": .unsigned(tally.wastedBytes),
        ])
    }

    static func sources(_ sources: ChunkSources) -> JSON {
        .object([
            "main_arena": tally(sources.mainArena), "thread_arenas": tally(sources.threadArenas),
            "mmap": tally(sources.mmapped),
        ])
    }

    static func live(_ live: LiveChunks) -> JSON {
        .object([
            "time_ns": .unsigned(live.time), "sequence": .unsigned(live.sequence), "live": sources(live.sources),
        ])
    }

    static func threshold(_ timeline: ThresholdTimeline) -> JSON {
        .object([
            "initial_bytes": .unsigned(timeline.initial),
            "final_bytes": .unsigned(timeline.final),
            "dynamic_at_end": .bool(timeline.isDynamicAtEnd),
            "changes": .array(
                timeline.changes.map { change in
                    .object([
                        "time_ns": .unsigned(change.time), "sequence": .unsigned(change.sequence),
                        "threshold_bytes": .unsigned(change.threshold),
                        "cause": .string(change.cause == .mallopt ? "mallopt" : "freed_mmapped_chunk"),
                    ])
                }),
        ])
    }

    static func candidate(_ entry: AllocatorReport.Candidate) -> JSON {
        let candidate = entry.candidate
        var boundary = "size_class"
        var threshold = JSON.null
        if case .mmapThreshold(let value) = candidate.kind {
            boundary = "mmap_threshold"
            threshold = .unsigned(value)
        }
        return .object([
            "stack_id": .unsigned(UInt64(entry.stackID)), "boundary": .string(boundary),
            "mmap_threshold": threshold, "requested": .unsigned(candidate.requested),
            "usable": .unsigned(candidate.usable), "largest_request_below": .unsigned(candidate.boundary),
            "calls": .unsigned(candidate.calls), "savable_bytes": .unsigned(candidate.savableBytes),
            "stack": .array(entry.stack.map(JSONRenderer.frame)),
        ])
    }

    static func gap(_ gap: MemoryGap) -> JSON {
        .object([
            "moment": .string(gap.moment), "time_ns": .unsigned(gap.time), "rss_bytes": .unsigned(gap.residentBytes),
            "live_requested_bytes": .unsigned(gap.liveRequestedBytes),
            "live_chunk_bytes": .unsigned(gap.liveChunkBytes),
            "brk_bytes": .unsigned(gap.breakBytes), "gap_bytes": .unsigned(gap.gapBytes),
            "parts": .array(
                gap.parts.map { .object(["cause": .string($0.part.rawValue), "bytes": .unsigned($0.bytes)]) }),
            "mapping_causes": .array(
                gap.mappingCauses.map { .object(["cause": .string($0.cause), "bytes": .unsigned($0.bytes)]) }),
        ])
    }

    static func mappings(_ view: AllocatorReport, _ mappings: MappingSummary) -> JSON {
        .object([
            "mmap_calls": .unsigned(mappings.mmapCalls), "munmap_calls": .unsigned(mappings.munmapCalls),
            "mremap_calls": .unsigned(mappings.mremapCalls), "break_moves": .unsigned(mappings.breakMoves),
            "break_bytes": .signed(mappings.breakBytes), "bytes_mapped": .unsigned(mappings.bytesMapped),
            "live_bytes_at_end": .unsigned(mappings.liveBytes), "peak_bytes": .unsigned(mappings.peakBytes),
            "peak_time_ns": .unsigned(mappings.peakTime),
            "causes": .array(
                view.mappingCauses.map { group in
                    .object([
                        "cause": .string(group.cause), "mmap_calls": .unsigned(group.mmapCalls),
                        "bytes_mapped": .unsigned(group.bytesMapped), "live_bytes_at_end": .unsigned(group.liveBytes),
                        "bytes_at_peak": .unsigned(group.peakBytes),
                        "sites": .array(group.sites.map(mappingSite)),
                    ])
                }),
        ])
    }

    static func mappingSite(_ entry: AllocatorReport.MappingSite) -> JSON {
        .object([
            "stack_id": .unsigned(UInt64(entry.site.stackID)), "mmap_calls": .unsigned(entry.site.mmapCalls),
            "bytes_mapped": .unsigned(entry.site.bytesMapped), "live_bytes_at_end": .unsigned(entry.site.liveBytes),
            "bytes_at_peak": .unsigned(entry.site.peakBytes), "typical_length": .unsigned(entry.site.typicalLength),
            "stack": .array(entry.stack.map(JSONRenderer.frame)),
        ])
    }

    static func point(_ point: AllocatorReport.Point) -> JSON {
        .object([
            "time_ns": .unsigned(point.time), "rss_bytes": .optional(point.residentBytes, JSON.unsigned),
            "brk_bytes": .optional(point.breakBytes, JSON.unsigned),
            "live_requested_bytes": .unsigned(point.liveRequestedBytes),
            "live_chunk_bytes": .unsigned(point.liveChunkBytes),
            "mmapped_chunk_bytes": .unsigned(point.mmappedChunkBytes),
            "mapped_bytes": .optional(point.mappedBytes, JSON.unsigned),
        ])
    }
}
