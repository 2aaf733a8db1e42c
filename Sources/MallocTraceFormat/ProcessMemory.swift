internal import CMallocTraceFormat

/// The process's memory as the kernel counted it when the trace ended (an `MT_RECORD_PROCESS_STATS`
/// record): resident set and program break, which the heap events alone cannot tell.
public struct ProcessMemory: Sendable, Equatable {
    /// Nanoseconds since start when the figures were taken.
    public var time: UInt64
    /// The resident set's high-water mark over the process's life (`getrusage` `ru_maxrss`, in bytes).
    public var peakResidentBytes: UInt64
    /// The resident set at the end (0 when `/proc/self/statm` could not be read).
    public var residentBytes: UInt64
    /// How far the program break lies past the start of the brk heap.
    public var breakBytes: UInt64
    /// Where the brk heap starts.
    public var startBreak: UInt64

    /// Decodes one record's payload; nil when it is too small.
    static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int, length: Int) -> ProcessMemory? {
        guard length >= MemoryLayout<mt_process_stats_record_t>.size else { return nil }
        let cursor = ByteCursor(bytes, from: offset, to: offset + length)
        return ProcessMemory(
            time: cursor.field(\mt_process_stats_record_t.time_ns, of: offset),
            peakResidentBytes: cursor.field(\mt_process_stats_record_t.peak_rss_bytes, of: offset),
            residentBytes: cursor.field(\mt_process_stats_record_t.rss_bytes, of: offset),
            breakBytes: cursor.field(\mt_process_stats_record_t.brk_bytes, of: offset),
            startBreak: cursor.field(\mt_process_stats_record_t.start_break, of: offset))
    }
}

/// One sample of the process's memory while it ran (an `MT_EVENT_RSS_SAMPLE` event).
public struct ResidentSample: Sendable, Equatable {
    /// Nanoseconds since start (coarse clock, as heap events).
    public var time: UInt64
    /// Resident set size.
    public var residentBytes: UInt64
    /// How far the program break lay past the start of the brk heap.
    public var breakBytes: UInt64

    public init(time: UInt64, residentBytes: UInt64, breakBytes: UInt64) {
        self.time = time
        self.residentBytes = residentBytes
        self.breakBytes = breakBytes
    }

    /// At most `limit` samples spread over `samples` (in time order): each of `limit` equal runs of
    /// consecutive samples gives its largest resident set, so that no peak is lost. O(n).
    public static func downsampled(_ samples: [ResidentSample], to limit: Int) -> [ResidentSample] {
        guard limit > 0 else { return [] }
        guard samples.count > limit else { return samples }
        var result: [ResidentSample] = []
        result.reserveCapacity(limit)
        for bucket in 0..<limit {
            let run = samples[(bucket * samples.count / limit)..<((bucket + 1) * samples.count / limit)]
            if let largest = run.max(by: { $0.residentBytes < $1.residentBytes }) { result.append(largest) }
        }
        return result
    }
}
