internal import CZstd

/// A whole payload as one zstd frame: for records that are read in one piece (the stored analysis, the pair
/// table of a version 3 trace), unlike chunks, which have their own decompressor.
enum ZstdFrame {
    /// `bytes` as one frame (content size stated), or nil when that is not smaller.
    static func compress(_ bytes: UnsafeRawBufferPointer, level: Int32) -> [UInt8]? {
        let bound = ZSTD_compressBound(bytes.count)
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { destination in
            ZSTD_compress(destination.baseAddress, bound, bytes.baseAddress, bytes.count, level)
        }
        guard ZSTD_isError(written) == 0, written < bytes.count else { return nil }
        return Array(output.prefix(written))
    }

    /// The content of `frame`, which is untrusted: nil unless it is exactly one frame that states a content
    /// size of at most `limit` bytes and decompresses to that size. Nothing larger than `limit` is allocated.
    static func decompress(_ frame: UnsafeRawBufferPointer, limit: Int) -> [UInt8]? {
        guard let source = frame.baseAddress, !frame.isEmpty else { return nil }
        let size = ZSTD_getFrameContentSize(source, frame.count)
        // Larger than the limit, or ZSTD_CONTENTSIZE_UNKNOWN / _ERROR (the two largest values).
        guard size <= UInt64(limit), ZSTD_findFrameCompressedSize(source, frame.count) == frame.count else {
            return nil
        }
        var output = [UInt8](repeating: 0, count: Int(size))
        let written = output.withUnsafeMutableBytes {
            ZSTD_decompress($0.baseAddress, $0.count, source, frame.count)
        }
        guard ZSTD_isError(written) == 0, written == Int(size) else { return nil }
        return output
    }
}
