#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Running out of memory while reading a trace ends in one clear line instead of the Swift runtime's
/// "failed to allocate" crash. The tables that grow with a trace's live blocks ask here before they
/// allocate: a trial `malloc` of the size they are about to take. (A hostile trace can claim tens of
/// millions of live blocks; the reader must say so and stop, not trap.)
public enum MemoryBudget {
    /// What happens when memory runs out: print the message and exit. Tests and embedders may replace it.
    nonisolated(unsafe) public static var exhausted: (String) -> Never = { message in
        let line = "malloctrace: out of memory: " + message + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        exit(70)  // EX_SOFTWARE: not a usage error, not a bad file
    }

    /// Calls ``exhausted`` unless `bytes` more can be allocated now.
    public static func reserve(_ bytes: Int, for what: @autoclosure () -> String) {
        guard let probe = malloc(max(bytes, 1)) else {
            exhausted("\(what()) needs \(bytes) more bytes; try a machine with more memory or a shorter trace")
        }
        free(probe)
    }
}
