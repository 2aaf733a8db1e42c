internal import CMallocTraceFormat
internal import CZstd

/// Rewrites a finished trace with its chunks compressed (docs/trace-format.md, section 4.6): the same
/// records in the same order, each chunk's events as one zstd frame. A chunk that would not get
/// smaller stays as it is, trimmed to its used bytes. Padding and the zero fill go; everything else is
/// copied. Reading the result gives exactly the events, stacks, modules and process facts of the input.
public final class TraceCompressor {
    /// Level 1. Measured on the benchmark traces: sqlite3 (84 MB raw, 6.2 M calls) gives 12.5 MB at level 1
    /// and 11.0 MB at level 3 for about the same CPU (0.17 s vs 0.19 s); churn's random sizes (77 MB, 5 M
    /// calls) hardly compress, 53.7 MB at level 1 vs 52.4 MB at level 3, but level 3 takes 0.77 s of CPU
    /// against 0.10 s, which would lengthen `run`. Level 1 keeps the worst case cheap.
    public static let defaultLevel = 1

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notATrace(String)
        case alreadyCompressed
        case zstd(String)
        case output(String)
        /// The keyed encoding (version 3) does not apply to this trace; version 2 does (``KeyedTraceEncoder``).
        case notKeyable(String)

        public var description: String {
            switch self {
            case .notATrace(let reason): reason
            case .alreadyCompressed: "it is already compressed"
            case .zstd(let reason): "zstd: \(reason)"
            case .output(let reason): reason
            case .notKeyable(let reason): "the keyed encoding does not apply: \(reason)"
            }
        }
    }

    private let chunks: ChunkWriter
    private let output = OutputBuffer()

    /// A compressor at zstd `level` (1-19); its context and buffer are reused for every chunk.
    public init(level: Int = defaultLevel) throws(Failure) {
        chunks = try ChunkWriter(level: level)
    }

    /// Compresses the trace in `input`, handing the output to `write` in pieces, in order. `done` is told
    /// of each input range that will not be read again (so that a mapped file's pages can be released).
    public func compress(
        _ input: UnsafeRawBufferPointer, done: (Range<Int>) -> Void = { _ in },
        write: (UnsafeRawBufferPointer) throws(Failure) -> Void
    ) throws(Failure) {
        output.removeAll()
        try Self.checkHeader(input)
        output.appendFileHeader(
            version: UInt16(MT_FORMAT_VERSION_COMPRESSED), flags: MT_FILE_FLAG_ZSTD_CHUNKS.rawValue)
        let cursor = ByteCursor(input, from: 0, to: input.count)
        let recordHeader = MemoryLayout<mt_record_header_t>.size
        var offset = MemoryLayout<mt_file_header_t>.size
        while offset < input.count {
            if output.count >= OutputBuffer.flushSize { try output.flush(write) }
            guard offset + recordHeader <= input.count, input[offset] != UInt8(MT_RECORD_END_OF_DATA.rawValue) else {
                // Zero fill ends the records; a cut-off header stays as it is, for the reader to report.
                let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
                if rest.contains(where: { $0 != 0 }) { output.append(rest) }
                break
            }
            let kind = input[offset]
            let length = Int(cursor.field(\mt_record_header_t.length, of: offset))
            let payload = offset + recordHeader
            guard length <= input.count - payload else {
                // Cut short: kept as it is, so that the reader reports it and reads the same part of it.
                output.append(UnsafeRawBufferPointer(rebasing: input[offset...]))
                break
            }
            let bytes = UnsafeRawBufferPointer(rebasing: input[payload..<payload + length])
            switch UInt32(kind) {
            case MT_RECORD_PADDING.rawValue, MT_RECORD_INDEX.rawValue:
                // An index describes the file it was appended to, not this one.
                break
            case MT_RECORD_CHUNK.rawValue where length >= MemoryLayout<mt_chunk_header_t>.size:
                try chunk(bytes)
            default:
                record(kind: kind, length: length)
                output.append(bytes)
                output.pad()
            }
            done(offset..<payload + length)
            offset = OutputBuffer.aligned(payload + length)
        }
        try output.flush(write)
    }

    static func checkHeader(_ input: UnsafeRawBufferPointer) throws(Failure) {
        let size = MemoryLayout<mt_file_header_t>.size
        guard input.count >= size, input.prefix(Int(MT_MAGIC_SIZE)).elementsEqual(FormatLayout.magic) else {
            throw .notATrace("it is not a malloctrace trace")
        }
        let cursor = ByteCursor(input, from: 0, to: size)
        let version = Int(cursor.littleEndian(UInt16.self, at: 8))
        guard (1...Int(MT_FORMAT_VERSION)).contains(version), cursor.littleEndian(UInt16.self, at: 10) == size else {
            throw .notATrace("its header is damaged or from a newer malloctrace")
        }
        if version >= 2 && cursor.littleEndian(UInt32.self, at: 12) & MT_FILE_FLAG_ZSTD_CHUNKS.rawValue != 0 {
            throw .alreadyCompressed
        }
    }

    /// One chunk: compressed when that makes it smaller, else its used bytes as they are.
    private func chunk(_ payload: UnsafeRawBufferPointer) throws(Failure) {
        let headerSize = MemoryLayout<mt_chunk_header_t>.size
        let cursor = ByteCursor(payload, from: 0, to: payload.count)
        // The reader clamps `used` to the capacity; so does this, and the copy says what the reader read.
        let used = min(Int(cursor.littleEndian(UInt32.self, at: 4)), payload.count - headerSize)
        try chunks.append(
            threadID: cursor.littleEndian(UInt32.self, at: 0),
            events: UnsafeRawBufferPointer(rebasing: payload[headerSize..<headerSize + used]), to: output)
    }

    private func record(kind: UInt8, length: Int) { output.appendRecordHeader(kind: kind, length: length) }
}

/// Writes CHUNK records: compressed with zstd when that makes them smaller (section 4.6), else as they are.
final class ChunkWriter {
    private let context: OpaquePointer

    /// A writer at zstd `level` (1-19); its context is reused for every chunk.
    init(level: Int) throws(TraceCompressor.Failure) {
        guard let context = ZSTD_createCCtx() else { throw .zstd("no memory for a compression context") }
        self.context = context
        // The checksum (4 bytes a chunk) turns a corrupt frame into a clear error instead of wrong events;
        // the content size, which one-shot compression always writes, lets a reader bound its memory.
        for (parameter, value) in [(ZSTD_c_compressionLevel, Int32(level)), (ZSTD_c_checksumFlag, 1)] {
            let result = ZSTD_CCtx_setParameter(context, parameter, value)
            if ZSTD_isError(result) != 0 { throw .zstd(String(cString: ZSTD_getErrorName(result))) }
        }
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Appends a CHUNK record of `threadID` holding `events` to `output`.
    func append(threadID: UInt32, events: UnsafeRawBufferPointer, to output: OutputBuffer) throws(TraceCompressor
        .Failure)
    {
        let headerSize = MemoryLayout<mt_chunk_header_t>.size
        let used = events.count
        let recordStart = output.count
        output.appendRecordHeader(kind: UInt8(MT_RECORD_CHUNK.rawValue), length: 0)  // flags and length: below
        output.appendLittleEndian(threadID)
        output.appendLittleEndian(UInt32(used))
        let frame = output.reserve(ZSTD_compressBound(used))
        let compressed = ZSTD_compress2(context, frame.baseAddress, frame.count, events.baseAddress, used)
        if ZSTD_isError(compressed) != 0 { throw .zstd(String(cString: ZSTD_getErrorName(compressed))) }
        if compressed < used {
            output.truncate(to: recordStart + 16 + compressed)
            output.patch(at: recordStart + 1, UInt8(MT_RECORD_FLAG_ZSTD.rawValue))
            output.patch(at: recordStart + 4, UInt32(headerSize + compressed))
        } else {
            output.truncate(to: recordStart + 16)
            output.append(events)
            output.patch(at: recordStart + 4, UInt32(headerSize + used))
        }
        output.pad()
    }
}
