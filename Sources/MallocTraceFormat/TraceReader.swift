internal import CMallocTraceFormat

/// Reads a trace file: the process facts and the heap events of all threads merged into one order.
///
/// The file is memory-mapped; decoding is one streaming pass whose memory is bounded by the number of
/// threads, distinct stacks and modules, never by the number of events. Damaged or cut-off traces give
/// ``diagnostics`` and ``isTruncated`` instead of errors wherever something can still be read.
public final class TraceReader {
    /// The newest format version this reader understands.
    public static let supportedVersion = Int(MT_FORMAT_VERSION)

    public let path: String
    public let formatVersion: Int
    /// True when the file may hold compressed chunks (header flag `MT_FILE_FLAG_ZSTD_CHUNKS`).
    public let hasCompressedChunks: Bool
    /// True for a version 3 trace (header flag `MT_FILE_FLAG_KEYED_BLOCKS`): event addresses are
    /// ``BlockKey``s, not the addresses the program saw.
    public let hasKeyedBlocks: Bool
    public private(set) var process: ProcessDetails?
    /// Present when the process reached its exit path (the last one seen if there are several).
    public private(set) var end: EndDetails?
    /// True when the file stops in the middle of a record: the writer was killed while writing.
    public private(set) var isCutShort = false
    /// Stacks by id: innermost return address first.
    public private(set) var stacks: [UInt32: [UInt64]] = [:]
    /// Every module seen, in the order they were reported (each load of a library is a module of its own).
    public private(set) var modules: [Module] = []
    /// For each stack id, the module generation of its definition (see ``Module/loadedAt``): its addresses
    /// are resolved against the modules loaded then, not a library loaded later at the same address.
    public private(set) var stackGenerations: [UInt32: Int] = [:]
    public private(set) var diagnostics: [TraceDiagnostic] = []
    /// For a sampled trace (``ProcessDetails/sampleRate`` > 0), after a pass over the events: how many
    /// allocations were recorded and what they stand for. Event sizes are estimates in such a trace.
    public private(set) var sampling: SampleEstimator?
    /// The last complete leak scan the process recorded (traces recorded with leak scanning on).
    public private(set) var leakScan: LeakScan?
    /// The process's memory when the trace ended (resident set, its peak, program break), when the trace
    /// recorded it: the last `PROCESS_STATS` record.
    public private(set) var processMemory: ProcessMemory?
    /// After a pass over the events: the process's resident set and program break over time, in time order.
    public private(set) var residentSamples: [ResidentSample] = []
    /// Which allocator served the calls and what the trace records of its blocks; nil in older traces.
    public private(set) var allocator: AllocatorDetails?
    /// After a pass over the events: the program's own mappings and program-break moves (`run --mmap`), in
    /// sequence order.
    public private(set) var mappings: [MappingEvent] = []
    /// After a pass over the events: the program's `mallopt` calls, in sequence order.
    public private(set) var malloptCalls: [MalloptCall] = []
    /// Marks, snapshots, pauses and resumes (malloctrace.h), in sequence order. Filled by a pass, as ``stacks``.
    public private(set) var marks: [TraceMark] = []
    /// Pools by id (malloctrace_pool_create). Filled by a pass.
    public private(set) var pools: [UInt32: TracePool] = [:]

    /// True when the trace does not reach the process's exit: killed, crashed, or still running.
    public var isTruncated: Bool { end == nil || isCutShort }

    private let file: MappedFile
    private var chunks: [ChunkLocation] = []
    private let indexLocation: TraceIndexRecord.Location?
    /// The pair table of a version 3 trace (empty otherwise).
    private let pairs: BlockPairs
    private var scanDiagnostics: [TraceDiagnostic] = []

    struct ChunkLocation {
        var threadID: UInt32
        /// The chunk's events.
        var start: Int
        var end: Int
        /// Where the chunk's record starts, and where the next chunk's record starts (or the file ends):
        /// once the chunk is decoded, nothing in `recordStart..<nextChunkRecord` is read again.
        var recordStart: Int
        var nextChunkRecord: Int
        /// For a compressed chunk, `start..<end` is its zstd frame and this is the size of its events
        /// (at most `MT_MAX_DECOMPRESSED_CHUNK`); nil for a chunk whose events are in the file as they are.
        var decompressedSize: Int? = nil
    }

    /// Maps and checks the file at `path`; throws only if it cannot be read as a trace at all.
    public convenience init(path: String) throws(TraceError) {
        try self.init(file: try MappedFile(path: path))
    }

    /// Reads a trace held in memory (tests, fuzzing); `name` stands for the path in messages.
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws(TraceError) {
        try self.init(file: MappedFile(copying: bytes, name: name))
    }

    private init(file: MappedFile) throws(TraceError) {
        let path = file.path
        self.path = path
        self.file = file
        var header = (version: 0, flags: UInt32(0))
        var found = RecordScan()
        try file.withBytes { (bytes: UnsafeRawBufferPointer) throws(TraceError) in
            header = try TraceReader.checkHeader(bytes, path: path)
            found = TraceReader.scanRecords(
                bytes, compressedChunks: header.flags & MT_FILE_FLAG_ZSTD_CHUNKS.rawValue != 0, pages: file.pageReleaser
            )
        }
        formatVersion = header.version
        hasCompressedChunks = header.flags & MT_FILE_FLAG_ZSTD_CHUNKS.rawValue != 0
        hasKeyedBlocks = header.flags & MT_FILE_FLAG_KEYED_BLOCKS.rawValue != 0
        pairs = found.pairs ?? .none
        (process, end, isCutShort, chunks, scanDiagnostics) = (
            found.process, found.end, found.cutShort, found.chunks, found.diagnostics
        )
        leakScan = LeakScan.lastComplete(found.leakScanParts)
        processMemory = found.processMemory
        indexLocation = found.index
        allocator = found.allocator
        if !found.leakScanParts.isEmpty && leakScan == nil {
            scanDiagnostics.append(
                .init(
                    offset: 0,
                    message: "the leak scan is incomplete (the process died while writing it); leaks are not classified"
                ))
        }
        diagnostics = scanDiagnostics
    }

    /// Header flags this reader knows (version 2 and later; version 1 files have no flags).
    static let knownFileFlags = MT_FILE_FLAG_ZSTD_CHUNKS.rawValue | MT_FILE_FLAG_KEYED_BLOCKS.rawValue

    private static func checkHeader(
        _ bytes: UnsafeRawBufferPointer, path: String
    ) throws(TraceError) -> (version: Int, flags: UInt32) {
        let headerSize = MemoryLayout<mt_file_header_t>.size
        guard bytes.count >= headerSize else {
            throw .notATrace(path: path, reason: bytes.isEmpty ? "the file is empty" : "the file is too short")
        }
        let magic = FormatLayout.magic
        guard magic.count == Int(MT_MAGIC_SIZE), bytes.prefix(magic.count).elementsEqual(magic) else {
            throw .notATrace(path: path, reason: "it does not start with the malloctrace magic bytes")
        }
        let cursor = ByteCursor(bytes, from: 0, to: headerSize)
        let version = Int(cursor.littleEndian(UInt16.self, at: 8))
        let declaredSize = Int(cursor.littleEndian(UInt16.self, at: 10))
        guard version >= 1 else { throw .corruptHeader(path: path, offset: 8, reason: "format version 0") }
        guard version <= supportedVersion else {
            throw .unsupportedVersion(path: path, found: version, supported: supportedVersion)
        }
        guard declaredSize == headerSize else {
            throw .corruptHeader(path: path, offset: 10, reason: "header size \(declaredSize), expected \(headerSize)")
        }
        // Version 1 reserved the flags and readers ignored them; from version 2 on they are features.
        guard version >= 2 else { return (version, 0) }
        let flags = cursor.littleEndian(UInt32.self, at: 12)
        let unknown = flags & ~knownFileFlags
        guard unknown == 0 else { throw .unsupportedFeatures(path: path, flags: unknown) }
        return (version, flags)
    }

    /// Reads the record headers. Each one read maps pages of the file (with the kernel's fault-around,
    /// 64 KiB each); `pages` gives them back as the scan goes, and decoding faults in what it needs.
    /// `compressedChunks`: the file declares them, so a CHUNK's `MT_RECORD_FLAG_ZSTD` counts (otherwise
    /// record flags are reserved and ignored, as version 1 says).
    private static func scanRecords(_ bytes: UnsafeRawBufferPointer, compressedChunks: Bool, pages: PageReleaser)
        -> RecordScan
    {
        var found = RecordScan()
        let headerSize = MemoryLayout<mt_record_header_t>.size
        let cursor = ByteCursor(bytes, from: 0, to: bytes.count)
        var offset = MemoryLayout<mt_file_header_t>.size
        var unknownKinds = Set<UInt8>()
        var released = 0
        let releaseStep = 4 << 20
        while offset < bytes.count {
            guard offset + headerSize <= bytes.count else {
                found.cutShort = true
                break
            }
            let kind = bytes[offset]
            let length = Int(cursor.field(\mt_record_header_t.length, of: offset))
            if kind == UInt8(MT_RECORD_END_OF_DATA.rawValue) { break }
            // Anything after an index was not covered by it.
            found.index?.isLast = false
            let payload = offset + headerSize
            let available = min(length, bytes.count - payload)
            if available < length {
                found.cutShort = true
                found.diagnostics.append(
                    .init(
                        offset: offset,
                        message: "record claims \(length) bytes but the file ends after \(available);"
                            + " nothing after it is read"))
            }
            /// A fixed-layout record's value; nil with a diagnostic when the record is too small for it (a record
            /// that is only cut short has its diagnostic already).
            func decoded<Value>(_ value: Value?, _ name: String) -> Value? {
                if value == nil && !found.cutShort {
                    found.diagnostics.append(
                        .init(offset: offset, message: "\(name) record of \(length) bytes is too small"))
                }
                return value
            }
            switch UInt32(kind) {
            case MT_RECORD_PROCESS.rawValue:
                found.process = decodeProcess(bytes, at: payload, length: available)
                if found.process == nil {
                    found.diagnostics.append(.init(offset: offset, message: "unreadable process record"))
                }
            case MT_RECORD_CHUNK.rawValue:
                let chunkHeader = MemoryLayout<mt_chunk_header_t>.size
                let isCompressed = compressedChunks && bytes[offset + 1] & UInt8(MT_RECORD_FLAG_ZSTD.rawValue) != 0
                if isCompressed {
                    if let chunk = compressedChunk(
                        bytes, at: offset, length: length, cutShort: found.cutShort, &found.diagnostics)
                    {
                        found.chunks.append(chunk)
                    }
                } else if available >= chunkHeader {
                    let used = Int(cursor.field(\mt_chunk_header_t.used, of: payload))
                    let start = payload + chunkHeader
                    if used > length - chunkHeader {
                        found.diagnostics.append(
                            .init(offset: offset, message: "chunk claims \(used) used bytes in a \(length)-byte record")
                        )
                    }
                    found.chunks.append(
                        ChunkLocation(
                            threadID: cursor.field(\mt_chunk_header_t.tid, of: payload),
                            start: start, end: start + min(used, available - chunkHeader), recordStart: offset,
                            nextChunkRecord: bytes.count))
                } else if !found.cutShort {
                    found.diagnostics.append(
                        .init(offset: offset, message: "chunk record of \(length) bytes is too small"))
                }
            case MT_RECORD_END.rawValue:
                if available >= MemoryLayout<mt_end_record_t>.size {
                    let how = cursor.field(\mt_end_record_t.how, of: payload)
                    let status = cursor.field(\mt_end_record_t.exit_status, of: payload)
                    let reason: EndDetails.Reason =
                        switch how {
                        case MT_END_DESTRUCTOR.rawValue: .normalExit
                        case MT_END_UNDERSCORE_EXIT.rawValue: .underscoreExit(status: status)
                        case MT_END_EXEC.rawValue: .exec
                        case MT_END_QUICK_EXIT.rawValue: .quickExit(status: status)
                        default: .unknown(how)
                        }
                    found.end = EndDetails(
                        time: cursor.field(\mt_end_record_t.end_monotonic_ns, of: payload),
                        lastSequence: cursor.field(\mt_end_record_t.last_sequence, of: payload), reason: reason)
                }
            case MT_RECORD_PADDING.rawValue:
                break
            case MT_RECORD_INDEX.rawValue:
                // Checked only when a report asks for it (``storedAnalysis()``); a cut-short one is useless.
                found.index =
                    available < length
                    ? nil
                    : TraceIndexRecord.Location(
                        recordStart: offset, payload: payload..<payload + length, isLast: true,
                        isCompressed: bytes[offset + 1] & UInt8(MT_RECORD_FLAG_ZSTD.rawValue) != 0)
            case MT_RECORD_PAIRS.rawValue:
                let isCompressed = bytes[offset + 1] & UInt8(MT_RECORD_FLAG_ZSTD.rawValue) != 0
                switch BlockPairs.read(
                    UnsafeRawBufferPointer(rebasing: bytes[payload..<payload + available]), isCompressed: isCompressed)
                {
                case .success(let pairs): found.pairs = pairs
                case .failure(let failure):
                    found.diagnostics.append(
                        .init(offset: offset, message: failure.reason + "; allocations that refer to it are lost"))
                }
            case MT_RECORD_PROCESS_STATS.rawValue:
                if let memory = decoded(ProcessMemory.decode(bytes, at: payload, length: available), "process stats") {
                    found.processMemory = memory
                }
            case MT_RECORD_ALLOCATOR.rawValue:
                if let details = decoded(AllocatorDetails.decode(bytes, at: payload, length: available), "allocator") {
                    found.allocator = details
                }
            case MT_RECORD_LEAK_SCAN.rawValue:
                switch LeakScan.part(bytes, at: payload, length: available) {
                case .success(let part): found.leakScanParts.append(part)
                case .failure(let failure):
                    found.diagnostics.append(
                        .init(offset: failure.offset, message: failure.reason + "; record skipped"))
                }
            default:
                if unknownKinds.insert(kind).inserted {
                    found.diagnostics.append(.init(offset: offset, message: "skipped records of unknown kind \(kind)"))
                }
            }
            if found.cutShort { break }
            let next = payload + length
            offset = (next + Int(MT_RECORD_ALIGNMENT) - 1) & ~(Int(MT_RECORD_ALIGNMENT) - 1)
            if offset - released >= releaseStep {
                pages.release(released - PageReleaser.remappedBehind..<offset)
                released = offset
            }
        }
        pages.release(released - PageReleaser.remappedBehind..<bytes.count)
        for index in found.chunks.indices.dropLast() {
            found.chunks[index].nextChunkRecord = found.chunks[index + 1].recordStart
        }
        return found
    }

    /// What the scan of the record headers found.
    private struct RecordScan {
        var process: ProcessDetails?
        var end: EndDetails?
        var cutShort = false
        var chunks: [ChunkLocation] = []
        var diagnostics: [TraceDiagnostic] = []
        var leakScanParts: [LeakScan.Part] = []
        var processMemory: ProcessMemory?
        var index: TraceIndexRecord.Location?
        var allocator: AllocatorDetails?
        var pairs: BlockPairs?
    }

    /// A compressed chunk's location, or nil (with a diagnostic) when it cannot be decompressed safely.
    /// A cut-short frame cannot be decompressed at all; the cut-short diagnostic already says why.
    private static func compressedChunk(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, length: Int, cutShort: Bool,
        _ diagnostics: inout [TraceDiagnostic]
    ) -> ChunkLocation? {
        if cutShort { return nil }
        let payload = offset + MemoryLayout<mt_record_header_t>.size
        let chunkHeader = MemoryLayout<mt_chunk_header_t>.size
        guard length > chunkHeader else {
            diagnostics.append(
                .init(offset: offset, message: "compressed chunk record of \(length) bytes is too small"))
            return nil
        }
        let cursor = ByteCursor(bytes, from: payload, to: payload + chunkHeader)
        let used = Int(cursor.field(\mt_chunk_header_t.used, of: payload))
        guard used <= Int(MT_MAX_DECOMPRESSED_CHUNK) else {
            diagnostics.append(
                .init(
                    offset: offset,
                    message: "compressed chunk claims \(used) bytes of events, more than the"
                        + " \(MT_MAX_DECOMPRESSED_CHUNK) a chunk may hold; chunk skipped"))
            return nil
        }
        return ChunkLocation(
            threadID: cursor.field(\mt_chunk_header_t.tid, of: payload), start: payload + chunkHeader,
            end: payload + length, recordStart: offset, nextChunkRecord: bytes.count, decompressedSize: used)
    }

    private static func decodeProcess(_ bytes: UnsafeRawBufferPointer, at offset: Int, length: Int) -> ProcessDetails? {
        let fixed = MemoryLayout<mt_process_record_t>.size
        guard length >= fixed else { return nil }
        let cursor = ByteCursor(bytes, from: offset, to: offset + length)
        let exeLength = Int(cursor.field(\mt_process_record_t.exe_length, of: offset))
        let argvLength = Int(cursor.field(\mt_process_record_t.argv_length, of: offset))
        guard exeLength <= length - fixed, argvLength <= length - fixed - exeLength else { return nil }
        let exeStart = offset + fixed
        let executable = String(
            decoding: UnsafeRawBufferPointer(rebasing: bytes[exeStart..<exeStart + exeLength]),
            as: UTF8.self)
        let argvStart = exeStart + exeLength
        var arguments = UnsafeRawBufferPointer(rebasing: bytes[argvStart..<argvStart + argvLength])
            .split(separator: 0, omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        if arguments.last == "" { arguments.removeLast() }
        return ProcessDetails(
            pid: cursor.field(\mt_process_record_t.pid, of: offset),
            parentPID: cursor.field(\mt_process_record_t.ppid, of: offset),
            startRealtime: cursor.field(\mt_process_record_t.start_realtime_ns, of: offset),
            executable: executable, arguments: arguments,
            pageSize: cursor.field(\mt_process_record_t.page_size, of: offset),
            maxDepth: cursor.field(\mt_process_record_t.max_depth, of: offset),
            unwindMode: cursor.field(\mt_process_record_t.unwind_mode, of: offset),
            sampleRate: cursor.field(\mt_process_record_t.sample_rate, of: offset),
            startMonotonic: cursor.field(\mt_process_record_t.start_monotonic_ns, of: offset))
    }

    /// The payload of the trace's stored analysis (`MT_RECORD_INDEX`), when it still describes the events:
    /// the last record, written with this reader's layout, over exactly the bytes before it, whose checksum
    /// matches. Reads the whole file once (the checksum) but decodes no event. O(file size).
    /// `checkingEvents: false` skips that checksum, for a caller that has read the events itself and checks
    /// what it uses of the payload against them; O(payload size).
    public func storedAnalysis(checkingEvents: Bool = true) -> Result<[UInt8], TraceIndexRecord.Rejection> {
        file.withBytes { (bytes: UnsafeRawBufferPointer) in
            TraceIndexRecord.validate(
                indexLocation, in: bytes, pages: file.pageReleaser, checkingEvents: checkingEvents)
        }
    }

    /// The thread ids that recorded events, in order of first appearance.
    public var threadIDs: [UInt32] {
        var seen = Set<UInt32>()
        return chunks.compactMap { seen.insert($0.threadID).inserted ? $0.threadID : nil }
    }

    /// Calls `body` with every heap event in sequence order (a free never comes before the allocation of its
    /// block). Stacks and modules met on the way are added to ``stacks`` and ``modules`` as a side effect.
    /// Each call starts from the beginning and rebuilds those tables.
    ///
    /// ``forEachEventBatch(_:)`` delivers the same events with less overhead per event.
    public func forEachEvent<Failure: Error>(_ body: (AllocatorEvent) throws(Failure) -> Void) throws(Failure) {
        try forEachEvent(onStack: nil, body)
    }

    /// Like ``forEachEvent(_:)``, and calls `onStack` with each stack definition (id, frames, the modules
    /// known at that point, the module generation of the definition, see ``stackGenerations``) as it is read: before the first event that uses the stack is delivered, and on
    /// the calling thread (a trace read with `onStack` is decoded on the calling thread).
    public func forEachEvent<Failure: Error>(
        onStack: ((UInt32, [UInt64], [Module], Int) -> Void)?, _ body: (AllocatorEvent) throws(Failure) -> Void
    ) throws(Failure) {
        try forEachEventBatch(onStack: onStack) { (batch: Span<AllocatorEvent>) throws(Failure) in
            for index in batch.indices { try body(batch[index]) }
        }
    }

    /// Events a batch holds at most when decoding on the calling thread: small enough to stay in the
    /// CPU's caches (56 KiB).
    static let batchCapacity = 1024

    /// How ``forEachEventBatch(_:)`` decodes. Every choice gives the same events; tests compare them.
    struct DecodingOptions {
        enum Thread {
            /// A second thread when the trace is large enough to pay for it and there is a second CPU.
            case automatic
            case caller
            case background
        }

        var thread = Thread.automatic
        /// Whether MALLOC, CALLOC and FREE events go through the decoder's fast loop.
        var usesCommonEventLoop = true
    }

    var decodingOptions = DecodingOptions()

    /// Below this many bytes of events, starting a thread costs more than it saves.
    static let backgroundDecodingThreshold = 1 << 20

    private var decodesInBackground: Bool {
        switch decodingOptions.thread {
        case .caller: return false
        case .background: return true
        case .automatic:
            let eventBytes = chunks.reduce(0) { $0 + ($1.decompressedSize ?? ($1.end - $1.start)) }
            return eventBytes >= Self.backgroundDecodingThreshold && MappedFile.onlineProcessorCount > 1
        }
    }

    /// Calls `body` with consecutive batches of heap events: the same events in the same order as
    /// ``forEachEvent(_:)``, with one call per batch instead of one per event. Memory stays bounded by a
    /// few batches. Side effects on ``stacks``, ``modules`` and ``diagnostics`` as for ``forEachEvent(_:)``.
    ///
    /// On a machine with more than one CPU, large traces are decoded on a second thread while `body`
    /// runs; `body` itself is always called on the calling thread, one batch after the other.
    public func forEachEventBatch<Failure: Error>(
        _ body: (Span<AllocatorEvent>) throws(Failure) -> Void
    ) throws(Failure) {
        try forEachEventBatch(onStack: nil, body)
    }

    /// ``forEachEventBatch(_:)`` with the `onStack` callback of ``forEachEvent(onStack:_:)``.
    public func forEachEventBatch<Failure: Error>(
        onStack: ((UInt32, [UInt64], [Module], Int) -> Void)?, _ body: (Span<AllocatorEvent>) throws(Failure) -> Void
    ) throws(Failure) {
        var catalog = Catalog(stacks: [:], modules: [], diagnostics: scanDiagnostics)
        catalog.onStack = onStack
        catalog.usableRule = allocator?.usableRule ?? .unknown
        if let rate = process?.sampleRate, rate > 0 { catalog.sampling = SampleEstimator(rate: UInt64(rate)) }
        defer {
            catalog.finishPools()
            marks = catalog.marks
            pools = catalog.pools
            leakScan?.classifyPoolBlocks(pools: catalog.pools, stackPools: catalog.poolStacks.mapValues(\.pool))
            sampling = catalog.sampling
            stacks = catalog.stacks
            stackGenerations = catalog.stackGenerations
            modules = catalog.modules
            diagnostics = catalog.diagnostics
            // Threads take samples in turn; stable, so equal times keep their order.
            residentSamples = catalog.residentSamples.enumerated().sorted {
                ($0.element.time, $0.offset) < ($1.element.time, $1.offset)
            }.map(\.element)
            mappings = catalog.mappings.sorted { $0.sequence < $1.sequence }
            malloptCalls = catalog.malloptCalls.sorted { $0.sequence < $1.sequence }
        }
        // The callback runs where the stacks are decoded: keep both on the calling thread.
        let inBackground = onStack == nil && decodesInBackground
        try file.withBytes { (bytes: UnsafeRawBufferPointer) throws(Failure) in
            let streams = ThreadStream.streams(
                for: chunks, bytes: bytes, pages: file.pageReleaser,
                usesCommonEventLoop: decodingOptions.usesCommonEventLoop, pairs: pairs)
            var merger = StreamMerger(streams: streams, catalog: &catalog)
            if inBackground {
                // The decoder is done with the mapped bytes when `run` returns, even when `body` throws.
                catalog = try BackgroundDecoder(merger: merger, catalog: catalog).run(body)
                return
            }
            try withUnsafeTemporaryAllocation(of: AllocatorEvent.self, capacity: Self.batchCapacity) {
                (batch: UnsafeMutableBufferPointer<AllocatorEvent>) throws(Failure) in
                batch.initialize(repeating: StreamMerger.placeholder)
                while true {
                    let count = merger.fill(batch, catalog: &catalog)
                    if count == 0 { break }
                    // AllocatorEvent is BitwiseCopyable: the elements need no deinitialization.
                    try body(UnsafeBufferPointer(rebasing: batch[..<count]).span)
                }
            }
        }
    }
}
