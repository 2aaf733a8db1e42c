/// Number formatting shared by the text renderers (and the CLI's run summary).
public enum Formatting {
    /// `1234567` → `1,234,567`.
    public static func grouped(_ value: UInt64) -> String {
        let digits = String(value)
        var result = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return result
    }

    /// `1, "block"` → `1 block`; `2000, "block"` → `2,000 blocks`.
    public static func counted(_ value: UInt64, _ noun: String) -> String {
        let plural = noun.hasSuffix("s") || noun.hasSuffix("x") || noun.hasSuffix("ch") ? noun + "es" : noun + "s"
        return "\(grouped(value)) \(value == 1 ? noun : plural)"
    }

    /// `1536` → `1.5 KiB`; exact below 1 KiB (`42 B`).
    public static func bytes(_ value: UInt64) -> String {
        if value < 1024 { return "\(value) B" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
        var scaled = Double(value) / 1024
        var unit = 0
        while scaled >= 1024 && unit < units.count - 1 {
            scaled /= 1024
            unit += 1
        }
        return "\(decimal(scaled, places: 1)) \(units[unit])"
    }

    /// Fixed decimals without Foundation's locale-dependent formatting.
    public static func decimal(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let rounded = (abs(value) * scale).rounded()
        guard rounded < 9e18 else { return String(value) }
        let whole = UInt64(rounded)
        let integerPart = whole / UInt64(scale)
        var fraction = String(whole % UInt64(scale))
        fraction = String(repeating: "0", count: max(0, places - fraction.count)) + fraction
        let sign = value < 0 && whole != 0 ? "-" : ""
        return places == 0 ? "\(sign)\(integerPart)" : "\(sign)\(integerPart).\(fraction)"
    }

    /// Seconds with millisecond precision: `0.004 s`.
    public static func seconds(nanoseconds: UInt64) -> String {
        "\(decimal(Double(nanoseconds) / 1e9, places: 3)) s"
    }
}
