import Testing

@testable import MallocTraceCheck

@Suite struct QuantityTests {
    @Test(
        arguments: [
            ("4096", 4096), ("64MiB", 64 << 20), ("64MB", 64 << 20), ("64 mb", 64 << 20), ("64M", 64 << 20),
            ("1.5GiB", 3 << 29), ("512K", 512 << 10), ("512kib", 512 << 10), ("0.5KiB", 512), ("  7 B ", 7),
            ("1_000", 1000), (".5K", 512), ("2.000KB", 2048), ("15PiB", 15 << 50), ("1T", 1 << 40),
        ] as [(String, UInt64)])
    func sizes(text: String, bytes: UInt64) throws {
        #expect(try Quantity.parseSize(text) == bytes)
    }

    @Test(arguments: [
        ("", "invalid size '': expected a number"),
        ("MiB", "invalid size 'MiB': expected a number"),
        ("12 parsecs", "invalid size '12 parsecs': unknown unit 'parsecs' (expected B, KiB, MiB, GiB, TiB)"),
        ("1.2.3K", "invalid size '1.2.3K': expected a number"),
        ("-5", "invalid size '-5': expected a number"),
        ("16EiB", "invalid size '16EiB': unknown unit 'EiB' (expected B, KiB, MiB, GiB, TiB)"),
        ("16384PiB", "invalid size '16384PiB': too large"),
        ("99999999999999999999", "invalid size '99999999999999999999': too large"),
        ("1.3B", "invalid size '1.3B': not a whole number of bytes"),
    ])
    func badSizes(text: String, message: String) {
        #expect(throws: CheckError.self) { try Quantity.parseSize(text) }
        do { _ = try Quantity.parseSize(text) } catch { #expect(error.description == message) }
    }

    @Test(
        arguments: [
            ("1000", 1000), ("1e6", 1_000_000), ("1M", 1_000_000), ("2.5k", 2500), ("1.5e3", 1500),
            ("3G", 3_000_000_000),
            ("18446744073709551615", UInt64.max), ("0", 0),
        ] as [(String, UInt64)])
    func counts(text: String, count: UInt64) throws {
        #expect(try Quantity.parseCount(text) == count)
    }

    @Test(arguments: [
        ("1e", "invalid count '1e': expected digits after the exponent"),
        ("1.5", "invalid count '1.5': not a whole number"),
        ("1e20", "invalid count '1e20': too large"),
        ("18446744073709551616", "invalid count '18446744073709551616': too large"),
        ("1X", "invalid count '1X': unknown suffix 'X' (expected K, M, G or e)"),
        ("lots", "invalid count 'lots': unknown suffix 'lots' (expected K, M, G or e)"),
    ])
    func badCounts(text: String, message: String) {
        do {
            _ = try Quantity.parseCount(text)
            Issue.record("accepted \(text)")
        } catch { #expect(error.description == message) }
    }

    @Test func percents() throws {
        #expect(try Quantity.parsePercent("10") == 10)
        #expect(try Quantity.parsePercent("2.5%") == 2.5)
        #expect(throws: CheckError.invalidPercent("-1")) { try Quantity.parsePercent("-1") }
        #expect(throws: CheckError.invalidPercent("nan")) { try Quantity.parsePercent("nan") }
    }
}
