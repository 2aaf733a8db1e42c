// libFuzzer entry point for the whole report pipeline: reader → TracePass (filters, every accumulator) →
// Report (symbol tables only, no subprocess) → text and JSON → a diff of the trace against itself or
// against a second trace, with both diff renderers. Built and run by `tools/fuzz/run.sh pipeline`.
//
// Input: CONTROL (8 bytes) then the trace. Without the control bytes every option is at its default.
//   byte 0  bit 0 time range (bytes 1, 2: from and to in 1/16 s; 255 is +inf), bit 1 thread filter
//           (byte 3), bit 2 include pattern, bit 3 exclude pattern (byte 4: indexes into `patterns`),
//           bit 4 keep allocator frames, bit 5 diff against the trace cut in half (a truncated
//           trace; else against itself), bit 6 all sections off but summary and leaks, bit 7 bounds at
//           marks or a snapshot (byte 3: indexes into `markNames`, as for the thread)
//   byte 5  grouping (% 3), top (/ 3 % 12, 11 meaning a huge value)
//   byte 6  temporary threshold (% 8), diff order (/ 8 % 5)
//   byte 7  counted leak kinds (bits 0-3; none set: the default), bit 4 the allocator's view (report --allocator)
import MallocTraceAnalysis
import MallocTraceFormat
import MallocTraceReports
import MallocTraceSymbolication

private let patterns = [
    "malloc", "*", "", "^", "$", "^$", "**", "lib", ".so$", "^/", "main", "fixture", "*alloc*", "^[", "?",
    "\u{0}", "é", "operator new", "::", ":",
]

/// Names of the seeds' marks and snapshots (Tests/Fixtures/api.c), and some that no trace has.
private let markNames = ["one", "two", "three", "s1", "s2", "begin", "end", "", "none"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPipeline(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let control = input.count >= 8 ? Array(input[0..<8]) : [UInt8](repeating: 0, count: 8)
    let trace = input.count >= 8 ? Array(input[8...]) : input
    var options = ReportOptions()
    options.symbolizer = .symbolTables
    let flags = control[0]
    if flags & 1 != 0 {
        func seconds(_ byte: UInt8) -> Double { byte == 255 ? .infinity : Double(byte) / 16 }
        options.filters.from = control[1] == 254 ? nil : seconds(control[1])
        options.filters.to = control[2] == 254 ? nil : seconds(control[2])
    }
    if flags & 2 != 0 { options.filters.threads = [UInt32(control[3]), UInt32(control[3]) &* 0x0101_0101] }
    if flags & 4 != 0 { options.filters.include = [StackPattern(patterns[Int(control[4] & 0x0F) % patterns.count])] }
    if flags & 8 != 0 { options.filters.exclude = [StackPattern(patterns[Int(control[4] >> 4) % patterns.count])] }
    if flags & 128 != 0 {
        let count = markNames.count
        let from = Int(control[3]) % count, to = Int(control[3]) / count % count
        if from < count - 1 { options.filters.fromMark = markNames[from] }
        if control[3] & 0x80 != 0 {
            options.filters.snapshot = markNames[to]
        } else {
            options.filters.toMark = markNames[to]
        }
    }
    options.keepsAllocatorFrames = flags & 16 != 0
    if flags & 64 != 0 { options.sections = [.summary, .leaks] }
    options.showsAllocator = control[7] & 16 != 0
    options.grouping = StackGrouping.allCases[Int(control[5]) % 3]
    let top = Int(control[5]) / 3 % 12
    options.top = top == 11 ? Int.max : top
    options.temporaryThreshold = Int(control[6] % 8)
    let order = DiffOrder.allCases[Int(control[6]) / 8 % DiffOrder.allCases.count]
    let kinds = Set(LeakKind.allCases.filter { control[7] & (1 << $0.rawValue) != 0 })
    if !kinds.isEmpty { options.leakKinds = kinds }

    guard let reader = try? TraceReader(bytes: trace, name: "fuzz.mtrace") else { return 0 }
    var checksum = report(reader, options: options)
    let other: TraceReader
    if flags & 32 != 0 {
        guard let second = try? TraceReader(bytes: Array(trace[..<(trace.count / 2)]), name: "half.mtrace") else {
            return 0
        }
        other = second
    } else {
        other = reader
    }
    let diff = TraceDiff.make(before: reader, after: other, options: options, order: order)
    checksum &+= UInt64(DiffRenderer.text(diff).utf8.count)
    checksum &+= UInt64((try? DiffRenderer.json(diff))?.utf8.count ?? 0)
    return checksum == 0x5eed_5eed_5eed_5eed ? 1 : 0
}

private func report(_ reader: TraceReader, options: ReportOptions) -> UInt64 {
    let symbolizer = Symbolizer(backend: .symbolTables)
    symbolizer.traceStart = reader.process?.startRealtime
    let pass = TracePass.run(
        reader: reader, filters: options.filters, temporaryThreshold: options.temporaryThreshold,
        symbolizer: symbolizer, countsSizes: options.sections.contains(.histogram),
        countsThreads: options.sections.contains(.threads), countedLeakKinds: options.leakKinds,
        analyzesAllocator: options.showsAllocator)
    let report = Report(pass: pass, options: options, symbolizer: symbolizer)
    var checksum = UInt64(TextRenderer.render(report).utf8.count)
    checksum &+= UInt64((try? JSONRenderer.render(report))?.utf8.count ?? 0)
    return checksum
}
