internal import CMallocTraceDemangle

#if canImport(Glibc)
    import Glibc
#endif

/// Turns linker-level symbol names into the names programmers write: C++ through libstdc++'s
/// `__cxa_demangle`, Swift through the Swift runtime's `swift_demangle`, legacy Rust names (which are
/// C++-mangled) made readable by dropping their hash and `$LT$`-style escapes. Anything else — C names,
/// Rust v0 names — is returned as it is, minus a symbol version.
public enum Demangler {
    /// The readable form of `name`. `@VERSION` / `@@VERSION` suffixes (`_Znwm@@GLIBCXX_3.4`) are removed
    /// first: `__cxa_demangle` rejects names that carry them.
    public static func demangle(_ name: String) -> String {
        let bare = name.firstIndex(of: "@").map { String(name[..<$0]) } ?? name
        guard !bare.isEmpty else { return name }
        if bare.hasPrefix("_Z") {
            guard let demangled = cxx(bare) else { return bare }
            return rustLegacy(demangled) ?? demangled
        }
        if isSwiftMangled(bare), let demangled = swift(bare) { return demangled }
        return bare
    }

    static func isSwiftMangled(_ name: String) -> Bool {
        name.hasPrefix("$s") || name.hasPrefix("_$s") || name.hasPrefix("$S") || name.hasPrefix("_$S")
            || name.hasPrefix("_T0") || name.hasPrefix("$e") || name.hasPrefix("_$e")
    }

    private static func cxx(_ name: String) -> String? {
        guard let result = mt_demangle_cxx(name) else { return nil }
        defer { free(result) }
        return String(cString: result)
    }

    private static func swift(_ name: String) -> String? {
        let length = name.utf8.count
        guard let result = mt_demangle_swift(name, length) else { return nil }
        defer { free(result) }
        return String(cString: result)
    }

    /// `std::rt::lang_start::h0123456789abcdef` → `std::rt::lang_start`, with Rust's escapes undone; nil
    /// when the name does not end in a Rust legacy hash.
    static func rustLegacy(_ demangled: String) -> String? {
        let utf8 = Array(demangled.utf8)
        guard utf8.count > 19 else { return nil }
        let hashStart = utf8.count - 16
        let isHex = utf8[hashStart...].allSatisfy {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
        }
        guard isHex, utf8[hashStart - 1] == UInt8(ascii: "h"), utf8[hashStart - 2] == UInt8(ascii: ":"),
            utf8[hashStart - 3] == UInt8(ascii: ":")
        else { return nil }
        var path = String(decoding: utf8[..<(hashStart - 3)], as: UTF8.self)
        if path.hasPrefix("_$") { path.removeFirst() }
        let escapes = [
            ("$LT$", "<"), ("$GT$", ">"), ("$RF$", "&"), ("$BP$", "*"), ("$C$", ","), ("$SP$", "@"),
            ("$u20$", " "), ("$u27$", "'"), ("$u5b$", "["), ("$u5d$", "]"), ("$u7b$", "{"), ("$u7d$", "}"),
            ("$u7e$", "~"), ("$u3b$", ";"), ("$u2b$", "+"), ("$u22$", "\""), ("..", "::"),
        ]
        for (escape, replacement) in escapes where path.contains(escape) {
            path = path.replacing(escape, with: replacement)
        }
        return path
    }
}
