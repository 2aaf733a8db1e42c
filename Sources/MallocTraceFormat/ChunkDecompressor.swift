internal import CMallocTraceFormat
internal import CZstd

/// Decompresses the zstd frame of a compressed chunk (record flag `MT_RECORD_FLAG_ZSTD`).
///
/// The frame is untrusted: before anything is allocated, the frame must state its content size, that
/// size must be the chunk's `used` (which the scan already capped at `MT_MAX_DECOMPRESSED_CHUNK`), and
/// the frame must fill the payload exactly. Decompression is one call into a buffer of exactly that
/// size, so zstd cannot write or allocate beyond it; the frame's checksum catches corrupt data.
///
/// One per decoding pass, shared by its thread streams (which run on one thread at a time): the zstd
/// context (about 100 KiB) is made once, each stream keeps its own ``DecompressedEvents``.
final class ChunkDecompressor {
    private var context: OpaquePointer?

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `frame` into `events`, which then holds `size` bytes; throws with a file-free reason.
    func decompress(_ frame: UnsafeRawBufferPointer, size: Int, into events: DecompressedEvents) throws(DecodeFailure) {
        guard let source = frame.baseAddress, !frame.isEmpty else { throw failure("the zstd frame is missing") }
        let contentSize = ZSTD_getFrameContentSize(source, frame.count)
        switch contentSize {
        case Self.contentSizeUnknown: throw failure("the zstd frame does not state its size")
        case Self.contentSizeError: throw failure("the payload is not a zstd frame")
        case UInt64(size): break
        default: throw failure("the zstd frame holds \(contentSize) bytes but the chunk header says \(size)")
        }
        let frameSize = ZSTD_findFrameCompressedSize(source, frame.count)
        if ZSTD_isError(frameSize) != 0 { throw failure("the zstd frame is cut short or damaged") }
        if frameSize != frame.count { throw failure("\(frame.count - frameSize) bytes follow the zstd frame") }
        if context == nil { context = ZSTD_createDCtx() }
        guard let context else { throw failure("no memory for a zstd context") }
        let destination = events.reserve(size)
        let written = ZSTD_decompressDCtx(context, destination, size, source, frame.count)
        if ZSTD_isError(written) != 0 { throw failure("zstd: " + String(cString: ZSTD_getErrorName(written))) }
        if written != size { throw failure("the zstd frame gave \(written) bytes instead of \(size)") }
    }

    // ZSTD_CONTENTSIZE_UNKNOWN and ZSTD_CONTENTSIZE_ERROR: macros Swift does not import.
    private static let contentSizeUnknown = UInt64.max
    private static let contentSizeError = UInt64.max - 1

    private func failure(_ reason: String) -> DecodeFailure { DecodeFailure(offset: 0, reason: reason) }
}

/// The decompressed events of one thread's current chunk. The buffer grows to the largest chunk the
/// thread has had (at most `MT_MAX_DECOMPRESSED_CHUNK`) and goes when the stream ends.
final class DecompressedEvents {
    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private(set) var count = 0

    deinit { storage.deallocate() }

    /// Room for `size` bytes; its contents are undefined.
    func reserve(_ size: Int) -> UnsafeMutableRawPointer? {
        precondition(size <= Int(MT_MAX_DECOMPRESSED_CHUNK), "the scan caps compressed chunk sizes")
        if storage.count < size {
            storage.deallocate()
            storage = .allocate(byteCount: size, alignment: 16)
        }
        count = size
        return storage.baseAddress
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<count]) }
}
