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

    /// One stream per thread id, in order of first appearance. O(chunks).
    static func streams(
        for chunks: [TraceReader.ChunkLocation], bytes: UnsafeRawBufferPointer, pages: PageReleaser,
        usesCommonEventLoop: Bool = true
    ) -> [ThreadStream] {
        var order: [UInt32] = []
        var byThread: [UInt32: [TraceReader.ChunkLocation]] = [:]
        for chunk in chunks {
            if byThread[chunk.threadID] == nil { order.append(chunk.threadID) }
            byThread[chunk.threadID, default: []].append(chunk)
        }
        return order.map {
            ThreadStream(
                threadID: $0, chunks: byThread[$0, default: []], bytes: bytes, pages: pages,
                usesCommonEventLoop: usesCommonEventLoop)
        }
    }

    private init(
        threadID: UInt32, chunks: [TraceReader.ChunkLocation], bytes: UnsafeRawBufferPointer, pages: PageReleaser,
        usesCommonEventLoop: Bool
    ) {
        self.threadID = threadID
        self.chunks = chunks
        self.bytes = bytes
        self.pages = pages
        self.usesCommonEventLoop = usesCommonEventLoop
    }

    /// Why ``decode(into:count:bound:catalog:)`` returned.
    enum Stop {
        case batchFull
        /// The next event comes after the bound; it is at `batch[count]`, not counted.
        case passedBound
        case streamEnded
    }

    /// Decodes this thread's heap events into `batch` from index `count` on, advancing `count`, while
    /// their sequence numbers are at most `bound`. A damaged chunk adds a diagnostic and the stream goes
    /// on with the thread's next chunk.
    mutating func decode(
        into batch: UnsafeMutableBufferPointer<AllocatorEvent>, count: inout Int, bound: UInt64,
        catalog: inout Catalog
    ) -> Stop {
        while true {
            switch decoder.decode(into: batch, count: &count, bound: bound, catalog: &catalog) {
            case .batchFull: return .batchFull
            case .passedBound: return .passedBound
            case .chunkEnded:
                if nextChunk > 0 { pages.release(after: chunks[nextChunk - 1]) }
                guard nextChunk < chunks.count else { return .streamEnded }
                let chunk = chunks[nextChunk]
                nextChunk += 1
                decoder = ChunkDecoder(
                    bytes: bytes, start: chunk.start, end: chunk.end, threadID: threadID,
                    usesCommonEventLoop: usesCommonEventLoop)
            }
        }
    }

    /// Decodes this thread's next heap event into `event`; false when the thread has no more.
    mutating func next(into event: inout AllocatorEvent, catalog: inout Catalog) -> Bool {
        withUnsafeMutablePointer(to: &event) { pointer in
            var count = 0
            let stop = decode(
                into: UnsafeMutableBufferPointer(start: pointer, count: 1), count: &count, bound: .max,
                catalog: &catalog)
            return stop != .streamEnded
        }
    }
}
