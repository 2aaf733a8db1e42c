internal import CZlib

/// Why compressing failed (zlib's return code; only an out-of-memory condition is expected).
public struct GzipError: Error, CustomStringConvertible {
    public var code: Int32
    public var description: String { "gzip compression failed (zlib error \(code))" }
}

/// gzip (RFC 1952) through the system's zlib.
public enum Gzip {
    /// `input` as one gzip member. O(n); memory: the input and its compressed bound.
    public static func compress(_ input: [UInt8], level: Int32 = 6) throws(GzipError) -> [UInt8] {
        var stream = z_stream()
        let initialized = mt_deflate_init_gzip(&stream, level)
        guard initialized == Z_OK else { throw GzipError(code: initialized) }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        var input = input
        let status = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw GzipError(code: status) }
        return Array(output.prefix(Int(stream.total_out)))
    }
}
