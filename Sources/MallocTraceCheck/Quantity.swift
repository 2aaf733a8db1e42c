/// Human sizes and counts for `--max-leaked`, `--max-peak` and `--max-allocations`.
///
/// Sizes: a number (`4096`, `1.5`) and an optional unit, case-insensitive, spaces allowed between:
/// `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB`, `T`/`TB`/`TiB`, `P`/`PB`/`PiB`. Every unit is a
/// power of 1024, `MB` included, as pytest-memray's `limit_memory("24 MB")` reads it. Counts: a number with
/// an optional exponent (`1e6`) or a decimal suffix `K` (10^3), `M` (10^6), `G` (10^9), `T` (10^12).
/// Both must come to a whole number that fits in 64 bits; the arithmetic is exact (no floating point).
public enum Quantity {
    /// Bytes from a human size. O(length).
    public static func parseSize(_ text: String) throws(CheckError) -> UInt64 {
        let (mantissa, rest) = splitNumber(text)
        guard let number = Decimal(mantissa) else { throw .invalidSize(text, reason: "expected a number") }
        let units: [String: Int] = [
            "": 0, "b": 0, "k": 1, "kb": 1, "kib": 1, "m": 2, "mb": 2, "mib": 2, "g": 3, "gb": 3, "gib": 3,
            "t": 4, "tb": 4, "tib": 4, "p": 5, "pb": 5, "pib": 5,
        ]
        let unit = rest.trimmingSpaces().lowercased()
        guard let power = units[unit] else {
            throw .invalidSize(text, reason: "unknown unit '\(rest.trimmingSpaces())' (expected B, KiB, MiB, GiB, TiB)")
        }
        switch number.scaled(by: UInt64(1) << (10 * power)) {
        case .value(let bytes): return bytes
        case .overflow: throw .invalidSize(text, reason: "too large")
        case .fraction: throw .invalidSize(text, reason: "not a whole number of bytes")
        }
    }

    /// A count from `1000`, `1e6`, `2.5M`. O(length).
    public static func parseCount(_ text: String) throws(CheckError) -> UInt64 {
        var (mantissa, rest) = splitNumber(text)
        var factor: UInt64 = 1
        if let e = rest.firstIndex(where: { $0 == "e" || $0 == "E" }), rest[..<e].allSatisfy(\.isWhitespace) {
            let digits = rest[rest.index(after: e)...]
            guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let exponent = Int(digits) else {
                throw .invalidCount(text, reason: "expected digits after the exponent")
            }
            guard exponent <= 19 else { throw .invalidCount(text, reason: "too large") }
            for _ in 0..<exponent { factor = factor.multipliedReportingOverflow(by: 10).partialValue }
            rest = ""
        }
        let suffixes: [String: UInt64] = [
            "": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000, "t": 1_000_000_000_000,
        ]
        guard let suffix = suffixes[rest.trimmingSpaces().lowercased()] else {
            throw .invalidCount(text, reason: "unknown suffix '\(rest.trimmingSpaces())' (expected K, M, G or e)")
        }
        guard let number = Decimal(mantissa.trimmingSpaces()) else {
            throw .invalidCount(text, reason: "expected a number")
        }
        let (scale, overflow) = factor.multipliedReportingOverflow(by: suffix)
        switch overflow ? .overflow : number.scaled(by: scale) {
        case .value(let count): return count
        case .overflow: throw .invalidCount(text, reason: "too large")
        case .fraction: throw .invalidCount(text, reason: "not a whole number")
        }
    }

    /// A percentage for `--fail-on-increase`: `10`, `2.5`, `10%`.
    public static func parsePercent(_ text: String) throws(CheckError) -> Double {
        var body = text.trimmingSpaces()
        if body.hasSuffix("%") { body.removeLast() }
        guard let value = Double(body), value.isFinite, value >= 0 else { throw .invalidPercent(text) }
        return value
    }

    /// The leading `digits[.digits]` (after spaces) and what follows.
    static func splitNumber(_ text: String) -> (number: String, rest: String) {
        let trimmed = Substring(text.trimmingSpaces())
        let end = trimmed.firstIndex { !($0.isASCIIDigit || $0 == "." || $0 == "_") } ?? trimmed.endIndex
        return (String(trimmed[..<end]), String(trimmed[end...]))
    }

    /// A non-negative decimal held exactly: `digits / 10^fractionDigits`.
    struct Decimal {
        var digits: [UInt8]
        var fractionDigits: Int

        /// `12`, `1.5`, `.5`, `1_000`; nil for anything else.
        init?(_ text: String) {
            let parts = text.filter { $0 != "_" }.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count <= 2, parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }),
                parts.contains(where: { !$0.isEmpty })
            else { return nil }
            let fraction = parts.count == 2 ? parts[1] : ""
            digits = (parts[0] + fraction).utf8.map { $0 - UInt8(ascii: "0") }
            fractionDigits = fraction.count
            // Trailing fraction zeros change nothing and would only risk overflow.
            while fractionDigits > 0 && digits.last == 0 {
                digits.removeLast()
                fractionDigits -= 1
            }
        }

        enum Scaled: Equatable { case value(UInt64), overflow, fraction }

        /// `self × factor`, exactly.
        func scaled(by factor: UInt64) -> Scaled {
            var mantissa: UInt64 = 0
            for digit in digits {
                let (times10, o1) = mantissa.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
                if o1 || o2 { return .overflow }
                mantissa = sum
            }
            guard fractionDigits <= 19 else { return mantissa == 0 ? .value(0) : .fraction }
            var divisor: UInt64 = 1
            for _ in 0..<fractionDigits { divisor *= 10 }
            let product = mantissa.multipliedFullWidth(by: factor)
            guard product.high < divisor else { return .overflow }
            let (quotient, remainder) = divisor.dividingFullWidth(product)
            return remainder == 0 ? .value(quotient) : .fraction
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
