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
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .cannotOpen(path: path, reason: MappedFile.lastErrorDescription()) }
        defer { close(fd) }
        var status = stat()
        if fstat(fd, &status) != 0 { throw .cannotOpen(path: path, reason: MappedFile.lastErrorDescription()) }
        if (status.st_mode & S_IFMT) == S_IFDIR { throw .cannotOpen(path: path, reason: "it is a directory") }
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

    /// CPUs online, for deciding whether a second thread can help.
    static var onlineProcessorCount: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    private static func lastErrorDescription() -> String {
        String(cString: strerror(errno))
    }
}
