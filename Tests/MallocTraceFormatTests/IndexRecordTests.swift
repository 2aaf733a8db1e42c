import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

/// The INDEX record's checksum is the one docs/trace-format.md (4.9) defines: these values come from an
/// independent implementation of that text (Python), so the code and the spec cannot drift apart.
@Suite struct IndexRecordTests {
    @Test func layoutIsTheDrawnOne() {
        #expect(MemoryLayout<mt_index_record_t>.size == 24)
        #expect(FormatLayout.offset(\mt_index_record_t.payload_checksum) == 4)
        #expect(FormatLayout.offset(\mt_index_record_t.covered_bytes) == 8)
        #expect(FormatLayout.offset(\mt_index_record_t.checksum) == 16)
        #expect(MT_RECORD_INDEX.rawValue == 10)
    }

    @Test(arguments: [
        (0, 0x53f1_9394_999e_1ef5 as UInt64), (5, 0x59a8_61ae_1b93_1d2a), (100, 0x95c2_e6aa_ef1b_bdbf),
        (1000, 0x9fbd_9739_7598_1ff7),
    ])
    func checksumFollowsTheSpec(length: Int, expected: UInt64) {
        let bytes = (0..<length).map { UInt8($0 * 7 % 251) }
        #expect(bytes.withUnsafeBytes { TraceIndexRecord.checksum($0) } == expected)
    }
}
