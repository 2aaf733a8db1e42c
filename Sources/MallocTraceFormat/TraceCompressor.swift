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

        public var description: String {
            switch self {
            case .notATrace(let reason): reason
            case .alreadyCompressed: "it is already compressed"
            case .zstd(let reason): "zstd: \(reason)"
            case .output(let reason): reason
            }
        }
    }

    private let context: OpaquePointer
    private let output = OutputBuffer()

    /// A compressor at zstd `level` (1-19); its context and buffer are reused for every chunk.
    public init(level: Int = defaultLevel) throws(Failure) {
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

    /// Compresses the trace in `input`, handing the output to `write` in pieces, in order. `done` is told
    /// of each input range that will not be read again (so that a mapped file's pages can be released).
    public func compress(
        _ input: UnsafeRawBufferPointer, done: (Range<Int>) -> Void = { _ in },
        write: (UnsafeRawBufferPointer) throws(Failure) -> Void
    ) throws(Failure) {
        output.removeAll()
        try Self.checkHeader(input)
        output.append(FormatLayout.magic)
        output.append(UInt16(MT_FORMAT_VERSION))
        output.append(UInt16(MemoryLayout<mt_file_header_t>.size))
        output.append(MT_FILE_FLAG_ZSTD_CHUNKS.rawValue)
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

    private static func checkHeader(_ input: UnsafeRawBufferPointer) throws(Failure) {
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
        let events = UnsafeRawBufferPointer(rebasing: payload[headerSize..<headerSize + used])
        let recordStart = output.count
        record(kind: UInt8(MT_RECORD_CHUNK.rawValue), length: 0)  // flags and length are known below
        output.append(cursor.littleEndian(UInt32.self, at: 0))
        output.append(UInt32(used))
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

    /// A record header with reserved fields and flags zero.
    private func record(kind: UInt8, length: Int) {
        output.append([kind, 0, 0, 0])
        output.append(UInt32(length))
    }
}

/// The compressor's output, written out in pieces of about ``flushSize`` bytes.
private final class OutputBuffer {
    static let flushSize = 1 << 20

    private var storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 << 20, alignment: 16)
    private(set) var count = 0

    deinit { storage.deallocate() }

    func removeAll() { count = 0 }

    /// `size` bytes at the end, to be filled by the caller (contents undefined).
    func reserve(_ size: Int) -> UnsafeMutableRawBufferPointer {
        if count + size > storage.count {
            let larger = UnsafeMutableRawBufferPointer.allocate(
                byteCount: max(storage.count * 2, count + size), alignment: 16)
            larger.copyMemory(from: UnsafeRawBufferPointer(rebasing: storage[..<count]))
            storage.deallocate()
            storage = larger
        }
        defer { count += size }
        return UnsafeMutableRawBufferPointer(rebasing: storage[count..<count + size])
    }

    func truncate(to newCount: Int) { count = newCount }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        reserve(bytes.count).copyMemory(from: bytes)
    }

    func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { append($0) } }

    func patch<T: FixedWidthInteger>(at offset: Int, _ value: T) {
        withUnsafeBytes(of: value.littleEndian) {
            UnsafeMutableRawBufferPointer(rebasing: storage[offset..<offset + $0.count]).copyMemory(from: $0)
        }
    }

    /// Zeros up to the next record boundary (records start at multiples of 8 in the file, and the
    /// buffer holds the file from its start or from a flush at such a boundary).
    func pad() {
        let padding = Self.aligned(count) - count
        if padding > 0 { reserve(padding).initializeMemory(as: UInt8.self, repeating: 0) }
    }

    static func aligned(_ offset: Int) -> Int {
        (offset + Int(MT_RECORD_ALIGNMENT) - 1) & ~(Int(MT_RECORD_ALIGNMENT) - 1)
    }

    func flush(_ write: (UnsafeRawBufferPointer) throws(TraceCompressor.Failure) -> Void) throws(TraceCompressor
        .Failure)
    {
        guard count > 0 else { return }
        try write(UnsafeRawBufferPointer(rebasing: storage[..<count]))
        count = 0
    }
}
