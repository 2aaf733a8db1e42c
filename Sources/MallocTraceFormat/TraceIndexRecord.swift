internal import CMallocTraceFormat

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The `MT_RECORD_INDEX` record (malloctrace_format.h): a stored analysis appended to a finished,
/// compressed trace. This layer checks that it still describes the file's events (last record, same
/// layout, covered length and checksum) and hands out its payload; what the payload means is up to the
/// reports, which write it.
public enum TraceIndexRecord {
    /// Where the reader found the last index record, before any check.
    struct Location {
        var recordStart: Int
        var payload: Range<Int>
        /// False when another record follows it: events were appended after the analysis.
        var isLast: Bool
        /// Record flag `MT_RECORD_FLAG_ZSTD`: the stored analysis is one zstd frame.
        var isCompressed: Bool
    }

    /// Why an index was not used.
    public enum Rejection: Error, Equatable, Sendable {
        case missing, notLast, tooShort, otherLayout(UInt32), otherCoverage, checksumMismatch, payloadChecksumMismatch
        case tooLarge, undecompressable
    }

    /// The checksum of malloctrace_format.h (MT_RECORD_INDEX): four independent lanes, so that it runs at
    /// memory speed instead of waiting on one multiply chain.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        checksum(bytes, pages: nil)
    }

    /// The checksum; with `pages`, the pages of `bytes` (a mapped file from its start) are given back every
    /// few MiB, so that checking a large trace does not keep it resident.
    static func checksum(_ bytes: UnsafeRawBufferPointer, pages: PageReleaser?) -> UInt64 {
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (
            MT_INDEX_SEED, MT_INDEX_SEED &+ 1, MT_INDEX_SEED &+ 2, MT_INDEX_SEED &+ 3
        )
        @inline(__always) func mix(_ lane: UInt64, _ word: UInt64) -> UInt64 {
            let mixed = lane ^ (word &* MT_INDEX_PRIME1)
            return ((mixed << 31) | (mixed >> 33)) &* MT_INDEX_PRIME2
        }
        let count = bytes.count
        var offset = 0
        let releaseStep = 4 << 20
        var released = 0
        if let base = bytes.baseAddress {
            while offset &+ 32 <= count {
                let stop = min(count & ~31, offset &+ releaseStep)
                while offset < stop {
                    @inline(__always) func word(_ at: Int) -> UInt64 {
                        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                    }
                    lanes.0 = mix(lanes.0, word(offset))
                    lanes.1 = mix(lanes.1, word(offset &+ 8))
                    lanes.2 = mix(lanes.2, word(offset &+ 16))
                    lanes.3 = mix(lanes.3, word(offset &+ 24))
                    offset &+= 32
                }
                pages?.release(released - PageReleaser.remappedBehind..<offset)
                released = offset
            }
        }
        // The last 1-31 bytes: whole words in turn, then one zero-padded word.
        var lane = 0
        while offset < count {
            var word: UInt64 = 0
            for index in 0..<min(8, count - offset) { word |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
            switch lane {
            case 0: lanes.0 = mix(lanes.0, word)
            case 1: lanes.1 = mix(lanes.1, word)
            case 2: lanes.2 = mix(lanes.2, word)
            default: lanes.3 = mix(lanes.3, word)
            }
            lane += 1
            offset += 8
        }
        pages?.release(released - PageReleaser.remappedBehind..<count)
        @inline(__always) func rotate(_ value: UInt64, _ by: UInt64) -> UInt64 { (value << by) | (value >> (64 - by)) }
        return (rotate(lanes.0, 1) &+ rotate(lanes.1, 7) &+ rotate(lanes.2, 12) &+ rotate(lanes.3, 18))
            ^ UInt64(count)
    }

    /// The payload of `location` if the record still describes the bytes before it, else why not. Without
    /// `checkingEvents`, the bytes before it are not read (their checksum is not compared): for a caller that
    /// checks what it takes from the payload against events it has read itself.
    static func validate(
        _ location: Location?, in bytes: UnsafeRawBufferPointer, pages: PageReleaser, checkingEvents: Bool = true
    ) -> Result<[UInt8], Rejection> {
        guard let location else { return .failure(.missing) }
        guard location.isLast else { return .failure(.notLast) }
        let fixed = MemoryLayout<mt_index_record_t>.size
        guard location.payload.count >= fixed else { return .failure(.tooShort) }
        guard location.payload.count - fixed <= Int(MT_INDEX_MAX_PAYLOAD) else {
            return .failure(.tooLarge)
        }
        let cursor = ByteCursor(bytes, from: location.payload.lowerBound, to: location.payload.upperBound)
        let start = location.payload.lowerBound
        let layout = cursor.field(\mt_index_record_t.layout, of: start)
        guard layout == MT_INDEX_LAYOUT else { return .failure(.otherLayout(layout)) }
        let covered = cursor.field(\mt_index_record_t.covered_bytes, of: start)
        guard covered == UInt64(location.recordStart) else { return .failure(.otherCoverage) }
        let expected = cursor.field(\mt_index_record_t.checksum, of: start)
        // The check reads the whole file but keeps little of it mapped at a time.
        if checkingEvents {
            let computed = checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<location.recordStart]), pages: pages)
            guard computed == expected else { return .failure(.checksumMismatch) }
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[start + fixed..<location.payload.upperBound])
        guard
            UInt32(truncatingIfNeeded: checksum(payload))
                == cursor.field(\mt_index_record_t.payload_checksum, of: start)
        else { return .failure(.payloadChecksumMismatch) }
        guard location.isCompressed else { return .success(Array(payload)) }
        return decompress(payload)
    }

    /// The stored analysis of a compressed index: one zstd frame that states a content size of at most
    /// `MT_INDEX_MAX_PAYLOAD` and fills the payload exactly, decompressed into a buffer of that size.
    private static func decompress(_ frame: UnsafeRawBufferPointer) -> Result<[UInt8], Rejection> {
        ZstdFrame.decompress(frame, limit: Int(MT_INDEX_MAX_PAYLOAD)).map { .success($0) }
            ?? .failure(.undecompressable)
    }

    /// Appends an index record holding `payload` to the compressed trace at `path`, covering the whole file
    /// as it is now. Returns false (and leaves the file as it was) when the file is not a compressed trace
    /// that ends on a record boundary, or cannot be written.
    public static func append(_ analysis: [UInt8], toTraceAt path: String) -> Bool {
        guard analysis.count <= Int(MT_INDEX_MAX_PAYLOAD) else { return false }
        // Paths and names repeat (modules, frames, the fingerprint): zstd makes the index a few times smaller.
        let compressed = compress(analysis)
        let payload = compressed ?? analysis
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { return false }
        var record: [UInt8] = []
        let accepted = file.withBytes { (bytes: UnsafeRawBufferPointer) -> Bool in
            let headerSize = MemoryLayout<mt_file_header_t>.size
            guard bytes.count >= headerSize, bytes.count % Int(MT_RECORD_ALIGNMENT) == 0,
                bytes.prefix(Int(MT_MAGIC_SIZE)).elementsEqual(FormatLayout.magic)
            else { return false }
            let cursor = ByteCursor(bytes, from: 0, to: headerSize)
            guard cursor.littleEndian(UInt16.self, at: 8) >= 2,
                cursor.littleEndian(UInt32.self, at: 12) & MT_FILE_FLAG_ZSTD_CHUNKS.rawValue != 0
            else { return false }
            guard endsOnRecordBoundary(bytes) else { return false }
            let sum = checksum(bytes)
            let length = MemoryLayout<mt_index_record_t>.size + payload.count
            guard length <= Int(UInt32.max) else { return false }
            record.reserveCapacity(8 + length + 8)
            record += [
                UInt8(MT_RECORD_INDEX.rawValue), compressed == nil ? 0 : UInt8(MT_RECORD_FLAG_ZSTD.rawValue), 0, 0,
            ]
            Self.append(UInt32(length), to: &record)
            Self.append(MT_INDEX_LAYOUT, to: &record)
            payload.withUnsafeBytes { Self.append(UInt32(truncatingIfNeeded: checksum($0)), to: &record) }
            Self.append(UInt64(bytes.count), to: &record)
            Self.append(sum, to: &record)
            record += payload
            while record.count % Int(MT_RECORD_ALIGNMENT) != 0 { record.append(0) }
            return true
        }
        guard accepted else { return false }
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var done = 0
        let ok = record.withUnsafeBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return false }
            while done < raw.count {
                let result = write(fd, base + done, raw.count - done)
                if result < 0 && errno == EINTR { continue }
                if result <= 0 { return false }
                done += result
            }
            return true
        }
        // A torn append leaves a record that fails its checks: a reader ignores it and reads the events.
        return ok
    }

    /// `bytes` as one zstd frame (level 3, content size stated), or nil when that is not smaller.
    private static func compress(_ bytes: [UInt8]) -> [UInt8]? {
        bytes.withUnsafeBytes { ZstdFrame.compress($0, level: 3) }
    }

    /// True when the records after the file header end exactly where the file ends: no zero fill, and no
    /// record cut short (whose claimed length would swallow an appended record).
    private static func endsOnRecordBoundary(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let cursor = ByteCursor(bytes, from: 0, to: bytes.count)
        let headerSize = MemoryLayout<mt_record_header_t>.size
        var offset = MemoryLayout<mt_file_header_t>.size
        while offset < bytes.count {
            guard bytes.count - offset >= headerSize, bytes[offset] != UInt8(MT_RECORD_END_OF_DATA.rawValue) else {
                return false
            }
            let length = Int(cursor.field(\mt_record_header_t.length, of: offset))
            guard length <= bytes.count - offset - headerSize else { return false }
            let next = offset + headerSize + length
            offset = (next + Int(MT_RECORD_ALIGNMENT) - 1) & ~(Int(MT_RECORD_ALIGNMENT) - 1)
        }
        return offset == bytes.count
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}
