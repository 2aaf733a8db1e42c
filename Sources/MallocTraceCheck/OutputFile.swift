public import Foundation

/// Writes the files `check` produces (`--save-baseline`, `--junit`, `--sarif`).
public enum OutputFile {
    /// Writes `data` to `path`: atomically (a new file renamed over the old one) when `path` is a regular
    /// file or does not exist, and straight through it otherwise. A rename over `/dev/null` or `/dev/full`
    /// would replace the device with a regular file (running as root) instead of writing to it; a FIFO or a
    /// terminal would likewise be swapped for a file.
    public static func write(_ data: Data, toPath path: String) throws {
        var status = stat()
        let isSpecial = stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG
        try data.write(to: URL(fileURLWithPath: path), options: isSpecial ? [] : .atomic)
    }
}
