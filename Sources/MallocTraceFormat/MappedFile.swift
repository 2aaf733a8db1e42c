#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A whole file mapped read-only (or, for tests, a private copy of some bytes). The memory lives as long
/// as this object; pointers into it must not escape the `withBytes` closure.
final class MappedFile {
    let path: String
    private let base: UnsafeRawPointer?
    let count: Int
    private let isMapped: Bool

    init(copying bytes: [UInt8], name: String) {
        path = name
        count = bytes.count
        isMapped = false
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes {
            copy.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(copy), byteCount: bytes.count)
        }
        base = UnsafeRawPointer(copy)
    }

    init(path: String) throws(TraceError) {
        self.path = path
        isMapped = true
        // O_NONBLOCK: opening a FIFO must not wait for a writer; anything but a regular file is refused below.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { throw .cannotOpen(path: path, reason: MappedFile.lastErrorDescription()) }
        defer { close(fd) }
        var status = stat()
        if fstat(fd, &status) != 0 { throw .cannotOpen(path: path, reason: MappedFile.lastErrorDescription()) }
        if (status.st_mode & S_IFMT) == S_IFDIR { throw .cannotOpen(path: path, reason: "it is a directory") }
        if (status.st_mode & S_IFMT) != S_IFREG {
            throw .cannotOpen(
                path: path, reason: "not a regular file (a trace is read from a file, not a pipe or device)")
        }
        count = Int(status.st_size)
        if count == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        if mapped == MAP_FAILED || mapped == nil {
            throw .cannotOpen(path: path, reason: MappedFile.lastErrorDescription())
        }
        _ = madvise(mapped, count, MADV_SEQUENTIAL)
        base = UnsafeRawPointer(mapped)
    }

    deinit {
        guard let base else { return }
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            base.deallocate()
        }
    }

    func withBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Releases the pages of this file that the reader is done with; see ``PageReleaser``.
    var pageReleaser: PageReleaser {
        PageReleaser(base: isMapped ? base.map { UnsafeMutableRawPointer(mutating: $0) } : nil, count: count)
    }

    /// CPUs online, for deciding whether a second thread can help.
    static var onlineProcessorCount: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    private static func lastErrorDescription() -> String {
        String(cString: strerror(errno))
    }
}

/// Gives pages of a file mapping back to the kernel once the reader is done with them. Pages of a mapping
/// that have been read count as resident memory until the mapping goes, so without this a report of a
/// large trace would grow to the size of the file; with it, memory follows the chunks being decoded.
///
/// Releasing is always safe for this read-only private mapping: a released page that is read again is
/// faulted in again from the page cache with the same bytes (so rounding ranges out to whole pages may
/// drop a neighbour's page, which only costs a page fault). For bytes that are not a file mapping (a
/// private copy in tests) it does nothing, since there it would lose the contents.
struct PageReleaser {
    fileprivate let base: UnsafeMutableRawPointer?
    fileprivate let count: Int
    private static let pageSize = max(1, sysconf(Int32(_SC_PAGESIZE)))

    /// A page fault maps already cached pages around it: 64 KiB of small pages ("fault-around"), or a whole
    /// large folio of the page cache, up to 2 MiB on x86-64 (files written with write(), as `malloctrace
    /// compress` writes them, get large folios). Decoding a chunk can so map up to this much of the file
    /// just before it again; measured: releasing only 64 KiB behind left half of a compressed trace's pages
    /// mapped (206 MB of RSS for a 362 MB trace).
    static let remappedBehind = 2 << 20

    /// Releases the pages of a decoded chunk: its record, whatever follows it up to the next chunk record
    /// (unused capacity, padding, the END record), and what a fault may have mapped again before it.
    func release(after chunk: TraceReader.ChunkLocation) {
        release(chunk.recordStart - Self.remappedBehind..<chunk.nextChunkRecord)
    }

    /// Releases every page that overlaps `range` (clamped to the file).
    func release(_ range: Range<Int>) {
        guard let base else { return }
        let start = max(0, range.lowerBound) / Self.pageSize * Self.pageSize
        let end = min(count, range.upperBound)
        guard start < end else { return }
        _ = madvise(base + start, end - start, MADV_DONTNEED)
    }
}
