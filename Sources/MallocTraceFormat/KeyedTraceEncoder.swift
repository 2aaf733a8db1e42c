internal import CMallocTraceFormat

/// Rewrites a finished, uncompressed trace as version 3 (docs/trace-format.md, 4.11 and 6.9): the same records,
/// the same events in each thread's chunks, but heap blocks named by keys instead of addresses and allocations
/// naming interned (size, stack) pairs, every chunk compressed with zstd. Reading the result gives exactly the
/// events, stacks, modules and process facts of the input, except that ``AllocatorEvent/address`` holds keys:
/// every consumer pairs a release with its allocation by equality alone, which keys preserve.
///
/// Pairing frees with allocations needs the events of all threads in sequence order, so the encoder merges the
/// threads as the reader does and writes each thread's chunks as they complete (chunks of different threads
/// may change places; a reader needs each thread's chunks in order, and the threads in the order of their first
/// chunks, which empty chunks at the start keep). Memory: one chunk per thread, the
/// live blocks (16–32 bytes each) and the pairs.
///
/// Traces the keyed form cannot carry exactly throw ``TraceCompressor/Failure/notKeyable(_:)`` (the caller
/// writes version 2 instead): damaged or cut-short ones (the reader would skip part of a chunk, and the
/// pairing would differ), and those where a pool claims heap blocks (malloctrace_pool_backing names a heap
/// block by its address).
public final class KeyedTraceEncoder {
    /// Level 3: measured on the benchmark traces, keyed events are small enough that level 3 costs little
    /// more than level 1 and saves a fifth (docs/BENCHMARKS.md).
    public static let defaultLevel = 3

    private let chunks: ChunkWriter
    private let level: Int
    private let output = OutputBuffer()
    private var unitLimit = KeyedTraceEncoder.largestUnit

    /// Bytes of events an output chunk gathers from a thread's input chunks (docs/BENCHMARKS.md), and what all
    /// threads' units together may hold.
    static let largestUnit = 2 << 20
    static let smallestUnit = 256 << 10
    static let unitBudget = 64 << 20

    /// An encoder at zstd `level` (1-19).
    public init(level: Int = defaultLevel) throws(TraceCompressor.Failure) {
        chunks = try ChunkWriter(level: level)
        self.level = level
    }

    /// A record of the input that is copied (or, for a leak scan, translated) rather than re-encoded.
    private struct RecordSpan {
        var kind: UInt8
        var record: Range<Int>
        var payload: Range<Int>
    }

    private struct Layout {
        /// Records before the first chunk (the process, the allocator), then those after it.
        var leading: [RecordSpan] = []
        var trailing: [RecordSpan] = []
        var threads: [ThreadReencoder] = []
    }

    /// Encodes the trace in `input`, handing the output to `write` in pieces, in order; `done` is told of each
    /// input range that will not be read again. On ``TraceCompressor/Failure/notKeyable(_:)``, what was
    /// written is not a trace: the caller starts over with ``TraceCompressor``.
    public func encode(
        _ input: UnsafeRawBufferPointer, done: (Range<Int>) -> Void = { _ in },
        write: (UnsafeRawBufferPointer) throws(TraceCompressor.Failure) -> Void
    ) throws(TraceCompressor.Failure) {
        output.removeAll()
        try TraceCompressor.checkHeader(input)
        var layout = try Self.layout(of: input)
        // Larger units compress better (one thread's events in one frame); memory stays bounded however many
        // threads there are.
        unitLimit = max(Self.smallestUnit, min(Self.largestUnit, Self.unitBudget / max(layout.threads.count, 1)))
        output.appendFileHeader(
            version: UInt16(MT_FORMAT_VERSION),
            flags: MT_FILE_FLAG_ZSTD_CHUNKS.rawValue | MT_FILE_FLAG_KEYED_BLOCKS.rawValue)
        for span in layout.leading { copy(span, from: input, keys: nil, done: done) }
        // Chunks are written as they complete, but a reader meets the threads in the order of their first chunks
        // and decodes their side events in that order: an empty chunk per thread keeps the order, and with it the
        // module generation of every stack (docs/trace-format.md 6.6).
        for thread in layout.threads {
            try chunks.append(
                threadID: thread.threadID, events: UnsafeRawBufferPointer(start: nil, count: 0), to: output)
        }
        var keys = KeyState()
        defer { keys.table.deallocate() }
        try merge(&layout.threads, keys: &keys, done: done, write: write)
        for span in layout.trailing { copy(span, from: input, keys: keys.table, done: done) }
        try appendPairs(keys.pairs)
        try output.flush(write)
    }

    /// The records of `input`; throws when it is cut short or a chunk record is malformed.
    private static func layout(of input: UnsafeRawBufferPointer) throws(TraceCompressor.Failure) -> Layout {
        var layout = Layout()
        var chunksByThread: [UInt32: [ThreadReencoder.ChunkSpan]] = [:]
        var threadOrder: [UInt32] = []
        let cursor = ByteCursor(input, from: 0, to: input.count)
        let recordHeader = MemoryLayout<mt_record_header_t>.size
        let chunkHeader = MemoryLayout<mt_chunk_header_t>.size
        var offset = MemoryLayout<mt_file_header_t>.size
        while offset < input.count {
            guard offset + recordHeader <= input.count, input[offset] != UInt8(MT_RECORD_END_OF_DATA.rawValue) else {
                if UnsafeRawBufferPointer(rebasing: input[offset...]).contains(where: { $0 != 0 }) {
                    throw .notKeyable("the trace is cut short")
                }
                break
            }
            let kind = input[offset]
            let length = Int(cursor.field(\mt_record_header_t.length, of: offset))
            let payload = offset + recordHeader
            guard length <= input.count - payload else { throw .notKeyable("the trace is cut short") }
            let span = RecordSpan(kind: kind, record: offset..<payload + length, payload: payload..<payload + length)
            switch UInt32(kind) {
            case MT_RECORD_PADDING.rawValue, MT_RECORD_INDEX.rawValue, MT_RECORD_PAIRS.rawValue:
                break  // an index describes the file it was appended to, not this one
            case MT_RECORD_CHUNK.rawValue:
                guard length >= chunkHeader else { throw .notKeyable("a chunk record is too small") }
                let used = Int(cursor.field(\mt_chunk_header_t.used, of: payload))
                guard used <= length - chunkHeader else { throw .notKeyable("a chunk claims more bytes than it has") }
                let threadID = cursor.field(\mt_chunk_header_t.tid, of: payload)
                if chunksByThread[threadID] == nil { threadOrder.append(threadID) }
                chunksByThread[threadID, default: []].append(
                    .init(record: span.record, events: payload + chunkHeader..<payload + chunkHeader + used))
            default:
                if threadOrder.isEmpty { layout.leading.append(span) } else { layout.trailing.append(span) }
            }
            offset = OutputBuffer.aligned(payload + length)
        }
        layout.threads = threadOrder.map {
            ThreadReencoder(threadID: $0, chunks: chunksByThread[$0, default: []], input: input)
        }
        return layout
    }

    /// Takes the threads' heap events in sequence order (a k-way merge on the sequence number of each thread's
    /// next event half, as the reader merges), deciding keys as it goes, and writes every chunk as it ends.
    private func merge(
        _ threads: inout [ThreadReencoder], keys: inout KeyState, done: (Range<Int>) -> Void,
        write: (UnsafeRawBufferPointer) throws(TraceCompressor.Failure) -> Void
    ) throws(TraceCompressor.Failure) {
        // Side events are checked as the reader checks them; what they define is not needed here.
        var catalog = Catalog(stacks: [:], modules: [], diagnostics: [])
        var heap = SequenceHeap()
        for index in threads.indices where try nextEvent(of: &threads[index], &catalog, done: done, write: write) {
            heap.push(sequence: threads[index].nextSequence, thread: index)
        }
        while let thread = heap.top {
            if !threads[thread].take(&keys) {
                heap.replaceTop(sequence: threads[thread].nextSequence)
            } else if try nextEvent(of: &threads[thread], &catalog, done: done, write: write) {
                heap.replaceTop(sequence: threads[thread].nextSequence)
            } else {
                heap.popTop()
            }
        }
    }

    /// Moves `thread` to its next heap event, writing out the chunks it finishes; false at its end.
    private func nextEvent(
        of thread: inout ThreadReencoder, _ catalog: inout Catalog, done: (Range<Int>) -> Void,
        write: (UnsafeRawBufferPointer) throws(TraceCompressor.Failure) -> Void
    ) throws(TraceCompressor.Failure) -> Bool {
        while true {
            let step: ThreadReencoder.Step
            do {
                step = try thread.advance(checking: &catalog)
            } catch {
                throw .notKeyable(error.reason)
            }
            switch step {
            case .event: return true
            case .finished: return false
            case .chunkEnded:
                let record = thread.openChunk?.record
                if !thread.finishInputChunk(unitLimit: unitLimit) {
                    if let record { done(record) }
                    continue
                }
                guard thread.out.count <= Int(MT_MAX_DECOMPRESSED_CHUNK) else {
                    throw .notKeyable("a chunk would grow beyond \(MT_MAX_DECOMPRESSED_CHUNK) bytes")
                }
                try chunks.append(threadID: thread.threadID, events: thread.out.bytes, to: output)
                if let record { done(record) }
                thread.closeChunk()
                if output.count >= OutputBuffer.flushSize { try output.flush(write) }
            }
        }
    }

    /// Copies a record; a leak scan's addresses of blocks live at the end become their keys (`keys`: the live
    /// blocks at the end), since the reader looks the scan up with the keys of the blocks it finds live.
    private func copy(
        _ span: RecordSpan, from input: UnsafeRawBufferPointer, keys: BlockKeyTable?, done: (Range<Int>) -> Void
    ) {
        defer { done(span.record) }
        if span.kind == UInt8(MT_RECORD_LEAK_SCAN.rawValue), let keys,
            let translated = LeakScan.translated(
                input, at: span.payload.lowerBound, length: span.payload.count, keys: { keys.key(at: $0) })
        {
            output.appendRecordHeader(kind: span.kind, length: translated.count)
            output.append(translated)
        } else {
            output.append(UnsafeRawBufferPointer(rebasing: input[span.record.lowerBound..<span.payload.lowerBound]))
            output.append(UnsafeRawBufferPointer(rebasing: input[span.payload]))
        }
        output.pad()
    }

    private func appendPairs(_ pairs: PairInterner) throws(TraceCompressor.Failure) {
        let payload = pairs.payload()
        guard payload.count <= Int(MT_MAX_PAIRS_PAYLOAD) else {
            throw .notKeyable("\(pairs.count) distinct size and stack pairs do not fit the pair table")
        }
        let compressed = payload.withUnsafeBytes { ZstdFrame.compress($0, level: Int32(level)) }
        output.appendRecordHeader(
            kind: UInt8(MT_RECORD_PAIRS.rawValue), flags: compressed == nil ? 0 : UInt8(MT_RECORD_FLAG_ZSTD.rawValue),
            length: (compressed ?? payload).count)
        output.append(compressed ?? payload)
        output.pad()
    }
}

/// A binary min-heap of threads by the sequence number of their next event half.
private struct SequenceHeap {
    private var entries: [(sequence: UInt64, thread: Int)] = []

    var top: Int? { entries.first?.thread }

    mutating func push(sequence: UInt64, thread: Int) {
        entries.append((sequence, thread))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if entries[parent].sequence <= entries[child].sequence { break }
            entries.swapAt(parent, child)
            child = parent
        }
    }

    mutating func replaceTop(sequence: UInt64) {
        entries[0].sequence = sequence
        siftDown()
    }

    mutating func popTop() {
        let last = entries.removeLast()
        guard !entries.isEmpty else { return }
        entries[0] = last
        siftDown()
    }

    private mutating func siftDown() {
        var parent = 0
        while true {
            var child = 2 * parent + 1
            if child >= entries.count { return }
            if child + 1 < entries.count && entries[child + 1].sequence < entries[child].sequence { child += 1 }
            if entries[parent].sequence <= entries[child].sequence { return }
            entries.swapAt(parent, child)
            parent = child
        }
    }
}
