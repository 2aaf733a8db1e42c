extension String {
    /// The text with control characters written out (`\n`, `\r`, `\t`, else `\u{1B}`), for one line of text output.
    ///
    /// Names taken from a trace (the command line, module paths, function names, marks, pools) are the traced
    /// program's, and a trace is untrusted input: printed raw, a newline in one starts a line of its own, which
    /// CI systems read as a command (GitHub Actions' `::error ...`, `::set-output ...`), and escape sequences
    /// reach the terminal. JSON, HTML, XML and SVG escape on their own; text output goes through this.
    public var escapingControlCharacters: String {
        guard utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0xC2 }) else { return self }
        var out = ""
        out.reserveCapacity(utf8.count + 8)
        for scalar in unicodeScalars {
            switch scalar.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0..<0x20, 0x7F, 0x80..<0xA0: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
