/// The events of one thread, decoded chunk after chunk in file order (which is that thread's order).
struct ThreadStream {
    let threadID: UInt32
    /// This thread's chunks in file order; `nextChunk` indexes the first one not yet started.
    private let chunks: [TraceReader.ChunkLocation]
    private var nextChunk = 0
    private var decoder = ChunkDecoder()
    private let bytes: UnsafeRawBufferPointer
    /// Gives each chunk's pages back once the stream is past it.
    private let pages: PageReleaser
    private let usesCommonEventLoop: Bool
    /// Kept alive here: the decoders read its entries.
    private let pairs: BlockPairs
    /// Shared by the streams of one pass; each stream decompresses its chunks into `decompressed`.
    private let decompressor: ChunkDecompressor
    private var decompressed: DecompressedEvents?

    /// One stream per thread id, in order of first appearance. O(chunks).
    static func streams(
        for chunks: [TraceReader.ChunkLocation], bytes: UnsafeRawBufferPointer, pages: PageReleaser,
        usesCommonEventLoop: Bool = true, pairs: BlockPairs = .none
    ) -> [ThreadStream] {
        var order: [UInt32] = []
        var byThread: [UInt32: [TraceReader.ChunkLocation]] = [:]
        for chunk in chunks {
            if byThread[chunk.threadID] == nil { order.append(chunk.threadID) }
            byThread[chunk.threadID, default: []].append(chunk)
        }
        let decompressor = ChunkDecompressor()
        return order.map {
            ThreadStream(
                threadID: $0, chunks: byThread[$0, default: []], bytes: bytes, pages: pages,
                usesCommonEventLoop: usesCommonEventLoop, decompressor: decompressor, pairs: pairs)
        }
    }

    private init(
        threadID: UInt32, chunks: [TraceReader.ChunkLocation], bytes: UnsafeRawBufferPointer, pages: PageReleaser,
        usesCommonEventLoop: Bool, decompressor: ChunkDecompressor, pairs: BlockPairs
    ) {
        self.pairs = pairs
        self.threadID = threadID
        self.chunks = chunks
        self.bytes = bytes
        self.pages = pages
        self.usesCommonEventLoop = usesCommonEventLoop
        self.decompressor = decompressor
    }

    /// Decodes this thread's heap events into `batch` from index `count` on, advancing `count`; true when
    /// `batch` is full, false when the thread has no more events. A damaged chunk adds a diagnostic and
    /// the stream goes on with the thread's next chunk.
    mutating func decode(
        into batch: UnsafeMutableBufferPointer<AllocatorEvent>, count: inout Int, catalog: inout Catalog
    ) -> Bool {
        while true {
            if decoder.decode(into: batch, count: &count, catalog: &catalog) { return true }
            if nextChunk > 0 { pages.release(after: chunks[nextChunk - 1]) }
            guard nextChunk < chunks.count else {
                decompressed = nil  // this stream is done: give its buffer back before the others end
                return false
            }
            let chunk = chunks[nextChunk]
            nextChunk += 1
            guard let size = chunk.decompressedSize else {
                decoder = ChunkDecoder(
                    bytes: bytes, start: chunk.start, end: chunk.end, threadID: threadID,
                    usesCommonEventLoop: usesCommonEventLoop, pairs: UnsafeBufferPointer(pairs.entries))
                continue
            }
            let events = decompressed ?? DecompressedEvents()
            decompressed = events
            do {
                try decompressor.decompress(
                    UnsafeRawBufferPointer(rebasing: bytes[chunk.start..<chunk.end]), size: size, into: events)
            } catch {
                catalog.diagnostics.append(
                    TraceDiagnostic(
                        offset: chunk.recordStart, message: "compressed chunk: \(error.reason); chunk skipped"))
                decoder = ChunkDecoder()
                continue
            }
            // The frame is never read again: its pages can go now (the events live in `events`).
            pages.release(after: chunk)
            decoder = ChunkDecoder(
                bytes: events.bytes, start: 0, end: size, threadID: threadID, usesCommonEventLoop: usesCommonEventLoop,
                compressedRecord: chunk.recordStart, pairs: UnsafeBufferPointer(pairs.entries))
        }
    }
}
