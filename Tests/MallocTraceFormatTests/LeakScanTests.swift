import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

/// LEAK_SCAN records: the kinds of the blocks live at the scan, in one or several parts.
@Suite struct LeakScanTests {
    /// One record's payload: the fixed fields, then `((address - previous) << 3 | kind)` varints.
    private func scanRecord(
        part: UInt32, entries: [(UInt64, LeakKind)], total: UInt32, sequence: UInt64 = 77, missed: UInt32 = 0,
        countOverride: UInt32? = nil
    ) -> [UInt8] {
        var fields = Fields()
        fields.fixed(sequence)
        fields.fixed(UInt64(8_000))
        fields.fixed(part)
        fields.fixed(countOverride ?? UInt32(entries.count))
        fields.fixed(UInt32(3))
        fields.fixed(missed)
        fields.fixed(UInt64(1_234))
        fields.fixed(UInt32(MT_LEAK_SCAN_AT_EXIT.rawValue))
        fields.fixed(total)
        var previous: UInt64 = 0
        for (address, kind) in entries {
            fields.varint((address - previous) << 3 | UInt64(kind.rawValue))
            previous = address
        }
        return fields.bytes
    }

    private func reader(_ records: [[UInt8]]) throws -> TraceReader {
        var builder = TraceBuilder()
        builder.process()
        for payload in records { builder.record(kind: MT_RECORD_LEAK_SCAN.rawValue, payload: payload) }
        builder.end()
        return try TraceReader(bytes: builder.bytes)
    }

    @Test func aScanInTwoPartsGivesEveryBlockItsKind() throws {
        let first = scanRecord(part: 0, entries: [(0x1000, .reachable), (0x1040, .definite)], total: 4, missed: 1)
        let second = scanRecord(part: 1, entries: [(0x2000, .indirect), (0x2100, .possible)], total: 4, missed: 1)
        let scan = try #require(try reader([first, second]).leakScan)
        #expect(scan.blockCount == 4)
        #expect(scan.kind(ofBlockAt: 0x1000) == .reachable)
        #expect(scan.kind(ofBlockAt: 0x1040) == .definite)
        #expect(scan.kind(ofBlockAt: 0x2000) == .indirect)
        #expect(scan.kind(ofBlockAt: 0x2100) == .possible)
        #expect(scan.kind(ofBlockAt: 0x1010) == nil)
        #expect(scan.sequence == 77 && scan.duration == 1_234 && scan.threadsScanned == 3 && scan.threadsMissed == 1)
        #expect(scan.trigger == .exit)
    }

    @Test func partsOutOfAddressOrderAreStillLookedUp() throws {
        let first = scanRecord(part: 0, entries: [(0x9000, .definite), (0x9100, .indirect)], total: 3)
        let second = scanRecord(part: 1, entries: [(0x1000, .reachable)], total: 3)
        let scan = try #require(try reader([first, second]).leakScan)
        #expect(scan.kind(ofBlockAt: 0x1000) == .reachable)
        #expect(scan.kind(ofBlockAt: 0x9000) == .definite)
        #expect(scan.kind(ofBlockAt: 0x9100) == .indirect)
    }

    @Test func anIncompleteScanIsNotUsedAndSaysSo() throws {
        let reader = try reader([scanRecord(part: 0, entries: [(0x1000, .definite)], total: 2)])
        #expect(reader.leakScan == nil)
        #expect(reader.diagnostics.contains { $0.message.contains("leak scan is incomplete") })
    }

    @Test func theLastCompleteScanWins() throws {
        let early = scanRecord(part: 0, entries: [(0x1000, .definite)], total: 1, sequence: 5)
        let late = scanRecord(part: 0, entries: [(0x1000, .reachable)], total: 1, sequence: 9)
        #expect(try reader([early, late]).leakScan?.kind(ofBlockAt: 0x1000) == .reachable)
    }

    @Test func damagedRecordsAreSkippedNotTrusted() throws {
        // More entries claimed than bytes, and an entry with an unknown kind (7).
        let overclaimed = scanRecord(part: 0, entries: [(0x1000, .definite)], total: 1, countOverride: 1_000_000)
        var badKind = scanRecord(part: 0, entries: [(0x1000, .definite)], total: 1)
        badKind[MemoryLayout<mt_leak_scan_record_t>.size] |= 7  // the first entry's kind bits
        for record in [overclaimed, badKind] {
            let reader = try reader([record])
            #expect(reader.leakScan == nil)
            #expect(!reader.diagnostics.isEmpty)
        }
    }

    @Test func kindListsParse() throws {
        #expect(try LeakKind.parseList("definite, indirect").get() == [.definite, .indirect])
        #expect(try LeakKind.parseList("all").get() == Set(LeakKind.allCases))
        #expect(try LeakKind.parseList("none").get() == [])
        #expect(throws: LeakKindListError.self) { try LeakKind.parseList("definite,leaky").get() }
    }
}
