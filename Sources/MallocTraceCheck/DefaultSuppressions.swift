public import MallocTraceFormat
import MallocTraceReports

/// A suppression that `check` applies unless `--no-default-suppressions` is given: runtime blocks that
/// LeakSanitizer or valgrind also keep out of their reports, each with the reason it exists.
public struct DefaultSuppression: Sendable {
    public let name: String
    /// One line: why the blocks it covers are not the program's leaks.
    public let reason: String
    /// The body in suppression-file syntax: a `leak:` line, or the location lines of a memcheck block.
    public let rule: Suppression.Rule

    /// A LeakSanitizer-style default: `leak:PATTERN`.
    public static func leak(_ name: String, _ pattern: String, reason: String) -> Self {
        Self(name: name, reason: reason, rule: .leakSanitizer(StackPattern(pattern)))
    }

    /// A memcheck-style default: location lines as in a block (`fun:*`, `obj:*/ld-linux*`, `...`).
    public static func memcheck(
        _ name: String, kinds: Set<LeakKind> = Set(LeakKind.allCases), _ frames: [String], reason: String
    ) -> Self {
        let patterns: [MemcheckRule.FramePattern] = frames.map { line in
            if line == "..." { return .ellipsis }
            if line.hasPrefix("obj:") { return .object(String(line.dropFirst(4))) }
            return .function(String(line.hasPrefix("fun:") ? line.dropFirst(4) : line[...]))
        }
        return Self(name: name, reason: reason, rule: .memcheck(MemcheckRule(kinds: kinds, frames: patterns)))
    }

    /// A default for what a library allocates itself (its first shown frame is in the module).
    public static func allocatedBy(
        _ name: String, module: String, kinds: Set<LeakKind> = Set(LeakKind.allCases), reason: String
    ) -> Self {
        Self(name: name, reason: reason, rule: .allocatedBy(module: Wildcard(module), kinds: kinds))
    }

    /// As a ``Suppression`` whose origin is `built-in`.
    public var suppression: Suppression { Suppression(name: name, origin: "built-in", rule: rule) }
}

extension DefaultSuppression {
    /// The defaults, applied before the user's files. Add one with a single entry here; the sources of the
    /// measurements are /work/shared/design/LEAKSCAN.md §3 and LSan's `kStdSuppressions`.
    public static let all: [DefaultSuppression] = [
        .leak(
            "tls-get-addr", "*tls_get_addr*",
            reason: "dynamic TLS blocks are referenced only from the DTV, which no root covers (LSan's standard)"),
        .leak(
            "glibc-thread-dtv", "_dl_allocate_tls",
            reason: "glibc caches a joined thread's DTV in its stack cache, out of every root's reach"),
        .memcheck(
            "ld.so-allocations", ["fun:*", "obj:*/ld-linux*"],
            reason: "blocks malloc'ed by ld.so itself (link maps, _dl_find_object): LSan's use_ld_allocations"),
        .memcheck(
            "glibc-stdio-buffer", kinds: [.reachable], ["...", "fun:_IO_file_doallocate"],
            reason: "stdio buffers live until exit; valgrind frees them with __libc_freeres"),
        .memcheck(
            "glibc-locale", kinds: [.reachable], ["...", "fun:setlocale"],
            reason: "setlocale's locale data lives until exit; valgrind frees it with __libc_freeres"),
        .memcheck(
            "glibc-nss", kinds: [.reachable], ["...", "fun:__nss_*"],
            reason: "NSS modules and their state live until exit; valgrind frees them with __libc_freeres"),
        .memcheck(
            "glibc-tzfile", kinds: [.reachable], ["...", "fun:__tz*"],
            reason: "the time zone data of localtime lives until exit; valgrind frees it with __libc_freeres"),
        // Called from ld.so's initializer run: the program's own reachable std::string buffers and containers
        // also come from libstdc++'s frames (operator new, _M_mutate), but from the program's.
        .memcheck(
            "libstdc++-emergency-pool", kinds: [.reachable], ["fun:*", "obj:*/libstdc++.so*", "obj:*/ld-linux*"],
            reason: "libstdc++ mallocs its exception emergency pool (72 KiB) once; valgrind frees it at exit"),
        .allocatedBy(
            "xctest-runner", module: "*/libXCTest.so",
            reason: "XCTest's XCTMain exits with its own test-run objects in a reference cycle (measured with"
                + " Swift 6.3's swift-corelibs-xctest); the tests' own allocations have their frames first"),
    ]
}
