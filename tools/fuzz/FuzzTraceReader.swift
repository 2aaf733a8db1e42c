// libFuzzer entry point for the trace reader: traces are untrusted input, so any byte sequence must give a
// report or a clear error, never a crash, a hang or unbounded memory. Built and run by tools/fuzz/run.sh.
import MallocTraceAnalysis
import MallocTraceFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTraceReader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let reader = try? TraceReader(bytes: bytes, name: "fuzz.mtrace") else { return 0 }
    var analyzer = HeapAnalyzer()
    reader.forEachEvent { analyzer.consume($0) }
    let analysis = analyzer.result()
    // Use what a report would use, so that nothing is optimized away.
    var checksum = analysis.summary.peakBytes &+ UInt64(analysis.sites.count) &+ UInt64(reader.diagnostics.count)
    for module in reader.modules { checksum &+= UInt64(module.segments.count) &+ UInt64(module.path.utf8.count) }
    for (_, frames) in reader.stacks { checksum &+= UInt64(frames.count) }
    if let process = reader.process { checksum &+= UInt64(process.arguments.count) }
    return checksum == 0x5eed_5eed_5eed_5eed ? 1 : 0
}
