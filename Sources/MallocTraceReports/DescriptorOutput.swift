import Foundation

/// Writing whole outputs to a file descriptor, for every command whose output must not fail silently.
public enum DescriptorOutput {
    /// Writes all of `bytes` to `descriptor`, retrying short writes and interrupted or would-block calls.
    /// Returns nil, or the errno of the write that failed.
    public static func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Int32? {
        bytes.withUnsafeBytes { buffer -> Int32? in
            guard let base = buffer.baseAddress else { return nil }
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, base + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return errno
                }
                offset += written
            }
            return nil
        }
    }
}
