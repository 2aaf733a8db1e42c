import CMallocTraceFormat
import Testing

@testable import MallocTraceFormat

@Suite struct HeaderTests {
    @Test func emptyFileIsNotATrace() {
        #expect(throws: TraceError.notATrace(path: "<memory>", reason: "the file is empty")) {
            try TraceReader(bytes: [])
        }
    }

    @Test func wrongMagicIsNotATrace() {
        var bytes = TraceBuilder().bytes
        bytes[0] = UInt8(ascii: "X")
        #expect(
            throws: TraceError.notATrace(path: "<memory>", reason: "it does not start with the malloctrace magic bytes")
        ) {
            try TraceReader(bytes: bytes)
        }
    }

    @Test func shortFileIsNotATrace() {
        #expect(throws: TraceError.notATrace(path: "<memory>", reason: "the file is too short")) {
            try TraceReader(bytes: Array(TraceBuilder().bytes.prefix(10)))
        }
    }

    @Test func newerVersionNamesBothVersions() throws {
        let builder = TraceBuilder(version: UInt16(MT_FORMAT_VERSION) + 1)
        let error = #expect(throws: TraceError.self) { try TraceReader(bytes: builder.bytes, name: "new.mtrace") }
        let message = try #require(error).description
        #expect(message.contains("version \(MT_FORMAT_VERSION + 1)"))
        #expect(message.contains("versions up to \(MT_FORMAT_VERSION)"))
    }

    @Test func processRecordIsDecoded() throws {
        var builder = TraceBuilder()
        builder.process(pid: 77, executable: "/usr/bin/demo", arguments: ["demo", "--flag", ""])
        builder.end(time: 123, lastSequence: 0, status: -1, how: MT_END_DESTRUCTOR.rawValue)
        let reader = try TraceReader(bytes: builder.bytes)
        let process = try #require(reader.process)
        #expect(process.pid == 77)
        #expect(process.parentPID == 1)
        #expect(process.executable == "/usr/bin/demo")
        #expect(process.arguments == ["demo", "--flag", ""])
        #expect(process.pageSize == 4096)
        #expect(process.maxDepth == 64)
        #expect(reader.end == EndDetails(time: 123, lastSequence: 0, reason: .normalExit))
        #expect(!reader.isTruncated)
    }

    @Test func underscoreExitKeepsItsStatus() throws {
        var builder = TraceBuilder()
        builder.end(status: 3, how: MT_END_UNDERSCORE_EXIT.rawValue)
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(reader.end?.reason == .underscoreExit(status: 3))
    }

    @Test func missingEndMeansTruncated() throws {
        var builder = TraceBuilder()
        builder.process()
        let reader = try TraceReader(bytes: builder.bytes + [UInt8](repeating: 0, count: 64))
        #expect(reader.isTruncated)
        #expect(!reader.isCutShort)
    }

    @Test func unknownRecordKindsAreSkipped() throws {
        var builder = TraceBuilder()
        builder.process()
        builder.record(kind: 200, payload: [1, 2, 3, 4, 5])
        builder.end()
        let reader = try TraceReader(bytes: builder.bytes)
        #expect(reader.process != nil)
        #expect(reader.end != nil)
        #expect(reader.diagnostics.count == 1)
    }

    /// The Swift side's view of the layout must match the C header's.
    @Test func layoutsMatchTheHeader() {
        #expect(MemoryLayout<mt_file_header_t>.size == 16)
        #expect(MemoryLayout<mt_record_header_t>.size == 8)
        #expect(MemoryLayout<mt_process_record_t>.size == 48)
        #expect(MemoryLayout<mt_chunk_header_t>.size == 8)
        #expect(MemoryLayout<mt_end_record_t>.size == 24)
        #expect(MemoryLayout<mt_leak_scan_record_t>.size == 48)
        #expect(FormatLayout.magic == Array("MTRACE\u{1a}\n".utf8))
    }

    /// Every fixed field at the offset docs/trace-format.md draws: the reader takes them from the header, so
    /// a header change that moves a field fails here instead of silently changing the format.
    @Test func processRecordFields() {
        let fields: [(KeyPath<mt_process_record_t, UInt32>, Int)] = [
            (\.pid, 0), (\.ppid, 4), (\.page_size, 24), (\.max_depth, 28), (\.unwind_mode, 32), (\.exe_length, 36),
            (\.argv_length, 40), (\.sample_rate, 44),
        ]
        for (field, offset) in fields { #expect(FormatLayout.offset(field) == offset, "\(field)") }
    }

    @Test func wideAndEndRecordFields() {
        #expect(FormatLayout.offset(\mt_process_record_t.start_realtime_ns) == 8)
        #expect(FormatLayout.offset(\mt_process_record_t.start_monotonic_ns) == 16)
        #expect(FormatLayout.offset(\mt_end_record_t.end_monotonic_ns) == 0)
        #expect(FormatLayout.offset(\mt_end_record_t.last_sequence) == 8)
        #expect(FormatLayout.offset(\mt_end_record_t.exit_status) == 16)
        #expect(FormatLayout.offset(\mt_end_record_t.how) == 20)
        #expect(FormatLayout.offset(\mt_record_header_t.length) == 4)
        #expect(FormatLayout.offset(\mt_chunk_header_t.tid) == 0)
        #expect(FormatLayout.offset(\mt_chunk_header_t.used) == 4)
        #expect(FormatLayout.offset(\mt_leak_scan_record_t.scan_time_ns) == 8)
        #expect(FormatLayout.offset(\mt_leak_scan_record_t.entry_count) == 20)
        #expect(FormatLayout.offset(\mt_leak_scan_record_t.threads_scanned) == 24)
        #expect(FormatLayout.offset(\mt_leak_scan_record_t.threads_missed) == 28)
        #expect(FormatLayout.offset(\mt_leak_scan_record_t.trigger) == 40)
        #expect(FormatLayout.offset(\mt_leak_scan_record_t.total_blocks) == 44)
    }

    @Test func functionCodesMatchOpcodes() {
        let pairs: [(AllocationFunction, mt_event_opcode)] = [
            (.malloc, MT_EVENT_MALLOC), (.calloc, MT_EVENT_CALLOC), (.realloc, MT_EVENT_REALLOC),
            (.reallocarray, MT_EVENT_REALLOCARRAY), (.posixMemalign, MT_EVENT_POSIX_MEMALIGN),
            (.alignedAlloc, MT_EVENT_ALIGNED_ALLOC), (.memalign, MT_EVENT_MEMALIGN), (.valloc, MT_EVENT_VALLOC),
            (.pvalloc, MT_EVENT_PVALLOC), (.free, MT_EVENT_FREE),
        ]
        for (function, opcode) in pairs { #expect(UInt32(function.rawValue) == opcode.rawValue, "\(function)") }
        // The control API's functions come from sized events (0x88-0x8F), not from their raw values.
        let control: [AllocationFunction] = [
            .poolAlloc, .poolFree, .poolDestroy, .mark, .snapshot, .pause, .poolCreate, .poolBacking,
        ]
        #expect(
            control.allSatisfy { $0.rawValue > MT_EVENT_FREE.rawValue && $0.rawValue < MT_EVENT_STACK.rawValue + 16 })
        #expect(pairs.count + control.count == AllocationFunction.allCases.count)
    }
}
