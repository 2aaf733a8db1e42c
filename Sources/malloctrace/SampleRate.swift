import ArgumentParser

/// `--sample-rate`: mean bytes between sample points, written as a number with an optional binary
/// suffix (`512K`, `1M`, `4KiB`).
struct SampleRate: ExpressibleByArgument, Equatable {
    /// The library keeps the rate in 32 bits.
    static let largest: UInt64 = UInt64(UInt32.max)

    let bytes: UInt64

    init?(argument: String) {
        let text = argument.uppercased()
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let suffix = text.dropFirst(digits.count)
        let multipliers: [Substring: UInt64] = [
            "": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
            "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
        ]
        guard let number = UInt64(digits), let multiplier = multipliers[suffix] else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow, (1...Self.largest).contains(product) else { return nil }
        bytes = product
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
