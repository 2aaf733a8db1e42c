import MallocTraceAnalysis
public import MallocTraceFormat
public import MallocTraceSymbolication

/// The stored analysis of a trace (its `MT_RECORD_INDEX` record): the ``ReportDigest`` of one set of report
/// options, written by `run` and `compress` after their pass over the events, so that a report with the
/// same options reads it instead of the events. The format layer checks that the record still covers the
/// file (position, checksum); this adds a stamp that names what the digest answers (docs/trace-format.md
/// 4.8): the writer's version, this encoding's ``layoutVersion``, and the exact options, every report
/// section included. Any difference, or any byte that does not decode, and the report reads the events.
public enum StoredAnalysis {
    /// Bump whenever ``ReportDigest`` or a figure in it changes meaning, so that no report uses an index
    /// computed by other code. A new ``ReportSection`` changes the stamp by itself.
    public static let layoutVersion = 1

    /// The options a stored analysis is written for: what `report` uses without options.
    public static var defaultOptions: ReportOptions { ReportOptions() }

    /// What a digest answers: the writer and everything in `options` that changes a figure or a list
    /// (not the symbolizer: frames are resolved when the report is made).
    static func stamp(for options: ReportOptions, writer: String) -> String {
        let all = ReportSection.allCases
        let filters = options.filters
        let parts: [String] = [
            "writer=\(writer)", "layout=\(layoutVersion)",
            "known=" + all.map(\.rawValue).joined(separator: ","),
            "sections=" + all.filter(options.sections.contains).map(\.rawValue).joined(separator: ","),
            "top=" + all.map { "\($0.rawValue):\(options.limit(for: $0))" }.joined(separator: ","),
            "group=\(options.grouping.rawValue)", "keep=\(options.keepsAllocatorFrames)",
            // Never stored (not a default): a report with the allocator's view always makes a pass.
            "allocator=\(options.showsAllocator)",
            "temporary=\(options.temporaryThreshold)",
            "filters=\(filters.isEmpty ? "" : "\(filters.summary)|\(filters.from ?? -1)|\(filters.to ?? -1)")"
                + "|\(filters.fromMark ?? "")|\(filters.toMark ?? "")|\(filters.snapshot ?? "")",
            "leak-kinds=" + options.leakKinds.sorted().map(\.description).joined(separator: ","),
        ]
        return parts.joined(separator: ";")
    }

    /// The record payload for `digest`, computed with `options`.
    public static func encode(_ digest: ReportDigest, options: ReportOptions, writer: String) -> [UInt8] {
        var out = IndexWriter()
        out.string(stamp(for: options, writer: writer))
        let summary = digest.summary
        for value in [
            summary.allocationCalls, summary.failedCalls, summary.freeCalls, summary.bytesAllocated,
            summary.peakBytes, summary.peakBlocks, summary.peakTime, summary.leakedBytes, summary.leakedBlocks,
            summary.unmatchedFrees, summary.ignoredFrees, summary.lastEventTime, UInt64(summary.threadCount),
        ] {
            out.varint(value)
        }
        out.varint(UInt64(summary.callsByFunction.count))
        for (function, count) in summary.callsByFunction.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            out.varint(UInt64(function.rawValue))
            out.varint(count)
        }
        out.varint(digest.temporaryAllocations)
        out.varint(digest.temporaryBytes)
        out.varint(UInt64(digest.histogram.count))
        for bucket in digest.histogram {
            for value in [bucket.minimumSize, bucket.maximumSize, bucket.allocationCalls, bucket.bytes] {
                out.varint(value)
            }
        }
        out.varint(UInt64(digest.threads.count))
        for thread in digest.threads {
            out.varint(UInt64(thread.threadID))
            for value in [
                thread.allocationCalls, thread.failedCalls, thread.freeCalls, thread.bytesAllocated,
                thread.firstEventTime, thread.lastEventTime,
            ] {
                out.varint(value)
            }
        }
        out.leakBreakdown(digest.leakKinds)
        out.varint(UInt64(digest.groupCount))
        out.varint(UInt64(digest.leakSiteCount))
        out.varint(UInt64(digest.sites.count))
        for section in ReportSection.allCases {
            guard let entries = digest.sites[section] else { continue }
            out.string(section.rawValue)
            out.varint(UInt64(entries.count))
            for entry in entries {
                out.varint(entry.bytes)
                out.varint(entry.blocks)
                out.figures(entry.figures)
                out.string(entry.group)
                out.varint(UInt64(entry.stackID))
                out.varint(UInt64(entry.stackCount))
            }
        }
        out.varint(UInt64(digest.stacks.count))
        for (id, addresses) in digest.stacks.sorted(by: { $0.key < $1.key }) {
            out.varint(UInt64(id))
            out.varint(UInt64(addresses.count))
            for address in addresses { out.varint(address) }
        }
        out.varint(UInt64(digest.generations.count))
        for (id, generation) in digest.generations.sorted(by: { $0.key < $1.key }) {
            out.varint(UInt64(id))
            out.varint(UInt64(max(0, generation)))
        }
        out.varint(UInt64(digest.modules.count))
        for module in digest.modules {
            out.varint(UInt64(module.id))
            out.string(module.path)
            out.varint(module.loadBias)
            out.varint(UInt64(module.segments.count))
            for segment in module.segments {
                out.varint(segment.start)
                out.varint(segment.size)
            }
            out.bytes(module.buildID)
            out.varint(module.isUnloaded ? 1 : 0)
            out.varint(UInt64(max(0, module.loadedAt)))
            out.varint(module.unloadedAt.map { UInt64(max(0, $0)) + 1 } ?? 0)
            out.optional(module.poolName)
        }
        if let sampling = digest.sampling {
            out.varint(1)
            out.varint(sampling.rate)
            out.varint(sampling.samples)
            out.varint(sampling.estimatedAllocationCalls.bitPattern)
        } else {
            out.varint(0)
        }
        out.varint(UInt64(digest.residentSamples.count))
        for sample in digest.residentSamples {
            out.varint(sample.time)
            out.varint(sample.residentBytes)
            out.varint(sample.breakBytes)
        }
        out.varint(UInt64(digest.pools.count))
        for pool in digest.pools {
            out.string(pool.name)
            out.varint(UInt64(pool.poolCount))
            out.figures(pool.figures)
        }
        out.varint(UInt64(digest.marks.count))
        for mark in digest.marks {
            out.string(mark.kind.rawValue)
            out.string(mark.name)
            out.varint(mark.sequence)
            out.varint(mark.time)
            out.varint(UInt64(mark.threadID))
        }
        if let frames = digest.frames {
            out.varint(1)
            out.string(frames.fingerprint)
            out.varint(UInt64(frames.byStack.count))
            for (id, stack) in frames.byStack.sorted(by: { $0.key < $1.key }) {
                out.varint(UInt64(id))
                out.varint(UInt64(stack.count))
                for frame in stack { out.frame(frame) }
            }
        } else {
            out.varint(0)
        }
        return out.bytes
    }

    /// The digest in `payload` if it was written by `writer` for exactly `options`; nil when the stamp
    /// differs or anything does not decode.
    public static func decode(_ payload: [UInt8], options: ReportOptions, writer: String) -> ReportDigest? {
        var input = IndexReader(payload)
        do throws(IndexReader.Failure) {
            guard try input.string() == stamp(for: options, writer: writer) else { return nil }
            return try decodeDigest(&input)
        } catch {
            return nil
        }
    }

    private static func decodeDigest(_ input: inout IndexReader) throws(IndexReader.Failure) -> ReportDigest {
        var summary = HeapSummary()
        summary.allocationCalls = try input.varint()
        summary.failedCalls = try input.varint()
        summary.freeCalls = try input.varint()
        summary.bytesAllocated = try input.varint()
        summary.peakBytes = try input.varint()
        summary.peakBlocks = try input.varint()
        summary.peakTime = try input.varint()
        summary.leakedBytes = try input.varint()
        summary.leakedBlocks = try input.varint()
        summary.unmatchedFrees = try input.varint()
        summary.ignoredFrees = try input.varint()
        summary.lastEventTime = try input.varint()
        summary.threadCount = try input.int()
        for _ in 0..<(try input.count()) {
            let function = try input.function()
            guard let function else { throw .invalid }
            summary.callsByFunction[function] = try input.varint()
        }
        let temporaryAllocations = try input.varint()
        let temporaryBytes = try input.varint()
        var histogram: [SizeHistogram.Bucket] = []
        for _ in 0..<(try input.count()) {
            histogram.append(
                SizeHistogram.Bucket(
                    minimumSize: try input.varint(), maximumSize: try input.varint(),
                    allocationCalls: try input.varint(), bytes: try input.varint()))
        }
        var threads: [ThreadTotals.Totals] = []
        for _ in 0..<(try input.count()) {
            var thread = ThreadTotals.Totals(threadID: try input.uint32(), firstEventTime: 0, lastEventTime: 0)
            thread.allocationCalls = try input.varint()
            thread.failedCalls = try input.varint()
            thread.freeCalls = try input.varint()
            thread.bytesAllocated = try input.varint()
            thread.firstEventTime = try input.varint()
            thread.lastEventTime = try input.varint()
            threads.append(thread)
        }
        let leakKinds = try input.leakBreakdown()
        let groupCount = try input.int()
        let leakSiteCount = try input.int()
        var sites: [ReportSection: [ReportDigest.Entry]] = [:]
        for _ in 0..<(try input.count()) {
            guard let section = ReportSection(rawValue: try input.string()), sites[section] == nil else {
                throw .invalid
            }
            var entries: [ReportDigest.Entry] = []
            for _ in 0..<(try input.count()) {
                entries.append(
                    ReportDigest.Entry(
                        bytes: try input.varint(), blocks: try input.varint(), figures: try input.figures(),
                        group: try input.string(), stackID: try input.uint32(), stackCount: try input.int()))
            }
            sites[section] = entries
        }
        var stacks: [UInt32: [UInt64]] = [:]
        for _ in 0..<(try input.count()) {
            let id = try input.uint32()
            var addresses: [UInt64] = []
            for _ in 0..<(try input.count()) { addresses.append(try input.varint()) }
            stacks[id] = addresses
        }
        var generations: [UInt32: Int] = [:]
        for _ in 0..<(try input.count()) { generations[try input.uint32()] = try input.int() }
        var modules: [Module] = []
        for _ in 0..<(try input.count()) {
            let id = try input.uint32()
            let path = try input.string()
            let loadBias = try input.varint()
            var segments: [Module.Segment] = []
            for _ in 0..<(try input.count()) {
                segments.append(Module.Segment(start: try input.varint(), size: try input.varint()))
            }
            var module = Module(id: id, path: path, loadBias: loadBias, segments: segments, buildID: try input.bytes())
            module.isUnloaded = try input.varint() != 0
            module.loadedAt = try input.int()
            let unloadedAt = try input.int()
            module.unloadedAt = unloadedAt == 0 ? nil : unloadedAt - 1
            module.poolName = try input.optional()
            modules.append(module)
        }
        var sampling: SampleEstimator?
        if try input.varint() != 0 {
            let rate = try input.varint()
            guard rate > 0 else { throw .invalid }
            sampling = SampleEstimator(
                rate: rate, samples: try input.varint(),
                estimatedAllocationCalls: Double(bitPattern: try input.varint()))
        }
        var residentSamples: [ResidentSample] = []
        for _ in 0..<(try input.count()) {
            residentSamples.append(
                ResidentSample(
                    time: try input.varint(), residentBytes: try input.varint(), breakBytes: try input.varint()))
        }
        var pools: [PoolUsage] = []
        for _ in 0..<(try input.count()) {
            pools.append(PoolUsage(name: try input.string(), poolCount: try input.int(), figures: try input.figures()))
        }
        var marks: [TraceMark] = []
        for _ in 0..<(try input.count()) {
            guard let kind = TraceMark.Kind(rawValue: try input.string()) else { throw .invalid }
            marks.append(
                TraceMark(
                    kind: kind, name: try input.string(), sequence: try input.varint(), time: try input.varint(),
                    threadID: try input.uint32()))
        }
        var frames: StoredFrames?
        if try input.varint() != 0 {
            let fingerprint = try input.string()
            var byStack: [UInt32: [ReportFrame]] = [:]
            for _ in 0..<(try input.count()) {
                let id = try input.uint32()
                var stack: [ReportFrame] = []
                for _ in 0..<(try input.count()) { stack.append(try input.frame()) }
                byStack[id] = stack
            }
            frames = StoredFrames(fingerprint: fingerprint, byStack: byStack)
        }
        guard input.isAtEnd else { throw .invalid }
        let digest = ReportDigest(
            summary: summary, temporaryAllocations: temporaryAllocations, temporaryBytes: temporaryBytes,
            histogram: histogram, threads: threads, leakKinds: leakKinds, groupCount: groupCount,
            leakSiteCount: leakSiteCount, sites: sites, stacks: stacks, generations: generations, modules: modules,
            sampling: sampling, residentSamples: residentSamples, pools: pools, marks: marks, frames: frames)
        guard isPlausible(digest) else { throw .invalid }
        return digest
    }

    /// Counts and byte figures a pass could have produced: below 2^58 (a trace would need that many events),
    /// and a finite sampling estimate. The renderers add and multiply a few of them, which a crafted index
    /// with valid checksums could otherwise make overflow; such an index is ignored like a damaged one.
    private static func isPlausible(_ digest: ReportDigest) -> Bool {
        let limit: UInt64 = 1 << 58
        func amounts(_ breakdown: LeakBreakdown) -> [UInt64] {
            [breakdown.unclassified.bytes, breakdown.unclassified.blocks]
                + breakdown.byKind.values.flatMap { [$0.bytes, $0.blocks] }
        }
        func figures(_ figures: SiteFigures) -> [UInt64] {
            [
                figures.allocationCalls, figures.bytesAllocated, figures.peakBytes, figures.peakBlocks,
                figures.leakedBytes, figures.leakedBlocks, figures.temporaryAllocations, figures.temporaryBytes,
            ] + amounts(figures.leakKinds)
        }
        let summary = digest.summary
        var values = [
            summary.allocationCalls, summary.failedCalls, summary.freeCalls, summary.bytesAllocated,
            summary.peakBytes, summary.peakBlocks, summary.leakedBytes, summary.leakedBlocks, summary.unmatchedFrees,
            summary.ignoredFrees, digest.temporaryAllocations, digest.temporaryBytes,
        ]
        values += summary.callsByFunction.values
        values += digest.histogram.flatMap { [$0.allocationCalls, $0.bytes] }
        values += digest.threads.flatMap { [$0.allocationCalls, $0.failedCalls, $0.freeCalls, $0.bytesAllocated] }
        values += amounts(digest.leakKinds)
        values += digest.sites.values.flatMap { $0.flatMap { [$0.bytes, $0.blocks] + figures($0.figures) } }
        values += digest.pools.flatMap { figures($0.figures) }
        guard values.allSatisfy({ $0 < limit }) else { return false }
        if let sampling = digest.sampling {
            let estimate = sampling.estimatedAllocationCalls
            guard estimate.isFinite, estimate >= 0, estimate < Double(limit) else { return false }
        }
        return true
    }
}

/// Little-endian LEB128 varints and length-prefixed bytes: the stored analysis's encoding.
private struct IndexWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) { bytes.appendVarint(value) }

    mutating func bytes(_ data: [UInt8]) {
        varint(UInt64(data.count))
        bytes += data
    }

    mutating func string(_ text: String) { bytes(Array(text.utf8)) }

    /// 0 for nil, else 1 and the string.
    mutating func optional(_ text: String?) {
        varint(text == nil ? 0 : 1)
        if let text { string(text) }
    }

    mutating func frame(_ frame: ReportFrame) {
        varint(frame.address)
        optional(frame.module)
        varint(frame.offset == nil ? 0 : 1)
        if let offset = frame.offset { varint(offset) }
        optional(frame.function)
        optional(frame.file)
        varint(frame.line == nil ? 0 : 1)
        if let line = frame.line { varint(UInt64(bitPattern: Int64(line))) }
        varint((frame.isInlined ? 1 : 0) | (frame.isPoolFrame ? 2 : 0))
        optional(frame.problem)
    }

    mutating func amount(_ amount: LeakAmount) {
        varint(amount.bytes)
        varint(amount.blocks)
    }

    mutating func leakBreakdown(_ breakdown: LeakBreakdown) {
        amount(breakdown.unclassified)
        varint(UInt64(breakdown.byKind.count))
        for (kind, value) in breakdown.byKind.sorted(by: { $0.key < $1.key }) {
            varint(UInt64(kind.rawValue))
            amount(value)
        }
    }

    mutating func figures(_ figures: SiteFigures) {
        for value in [
            figures.allocationCalls, figures.bytesAllocated, figures.peakBytes, figures.peakBlocks,
            figures.leakedBytes, figures.leakedBlocks, figures.temporaryAllocations, figures.temporaryBytes,
        ] {
            varint(value)
        }
        leakBreakdown(figures.leakKinds)
        varint(UInt64(figures.function?.rawValue ?? 0))
    }
}

/// Reads what ``IndexWriter`` wrote; every read is checked, so any payload gives a value or a failure.
private struct IndexReader {
    enum Failure: Error { case invalid }

    private let data: [UInt8]
    private var position = 0

    init(_ data: [UInt8]) { self.data = data }

    var isAtEnd: Bool { position == data.count }

    mutating func varint() throws(Failure) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < data.count, shift < 64 else { throw .invalid }
            let byte = data[position]
            position += 1
            let bits = UInt64(byte & 0x7F)
            guard shift < 63 || bits <= 1 else { throw .invalid }
            value |= bits << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    mutating func int() throws(Failure) -> Int {
        guard let value = Int(exactly: try varint()) else { throw .invalid }
        return value
    }

    mutating func uint32() throws(Failure) -> UInt32 {
        guard let value = UInt32(exactly: try varint()) else { throw .invalid }
        return value
    }

    /// A count of items that follow; each takes at least one byte, so a larger count cannot be right.
    mutating func count() throws(Failure) -> Int {
        let value = try int()
        guard value <= data.count - position else { throw .invalid }
        return value
    }

    mutating func bytes() throws(Failure) -> [UInt8] {
        let length = try count()
        defer { position += length }
        return Array(data[position..<position + length])
    }

    mutating func string() throws(Failure) -> String { String(decoding: try bytes(), as: UTF8.self) }

    mutating func optional() throws(Failure) -> String? {
        try varint() == 0 ? nil : try string()
    }

    mutating func frame() throws(Failure) -> ReportFrame {
        let address = try varint()
        let module = try optional()
        let offset = try varint() == 0 ? nil : try varint()
        var frame = ReportFrame(address: address, module: module, offset: offset)
        frame.function = try optional()
        frame.file = try optional()
        frame.line = try varint() == 0 ? nil : Int(Int64(bitPattern: try varint()))
        let flags = try varint()
        frame.isInlined = flags & 1 != 0
        frame.isPoolFrame = flags & 2 != 0
        frame.problem = try optional()
        return frame
    }

    /// An allocation function by raw value; 0 is none.
    mutating func function() throws(Failure) -> AllocationFunction? {
        let raw = try varint()
        guard raw != 0 else { return nil }
        guard raw <= UInt64(UInt8.max), let function = AllocationFunction(rawValue: UInt8(raw)) else {
            throw .invalid
        }
        return function
    }

    mutating func amount() throws(Failure) -> LeakAmount {
        LeakAmount(bytes: try varint(), blocks: try varint())
    }

    mutating func leakBreakdown() throws(Failure) -> LeakBreakdown {
        var breakdown = LeakBreakdown()
        breakdown.unclassified = try amount()
        for _ in 0..<(try count()) {
            let raw = try varint()
            guard raw <= UInt64(UInt8.max), let kind = LeakKind(rawValue: UInt8(raw)) else { throw .invalid }
            breakdown.byKind[kind] = try amount()
        }
        return breakdown
    }

    mutating func figures() throws(Failure) -> SiteFigures {
        var figures = SiteFigures()
        figures.allocationCalls = try varint()
        figures.bytesAllocated = try varint()
        figures.peakBytes = try varint()
        figures.peakBlocks = try varint()
        figures.leakedBytes = try varint()
        figures.leakedBlocks = try varint()
        figures.temporaryAllocations = try varint()
        figures.temporaryBytes = try varint()
        figures.leakKinds = try leakBreakdown()
        figures.function = try function()
        return figures
    }
}

extension StoredAnalysis {
    /// One pass over `reader`'s events with ``defaultOptions``, as `report` makes it (nothing is symbolized).
    /// `isStorable` is false when decoding the events reported damage: its diagnostics name file offsets,
    /// which a rewritten (compressed) file does not share, so such an analysis is not stored.
    public static func analyze(_ reader: TraceReader) -> (digest: ReportDigest, isStorable: Bool) {
        let options = defaultOptions
        let diagnosticsBefore = reader.diagnostics.count
        let pass = TracePass.run(
            reader: reader, filters: options.filters, temporaryThreshold: options.temporaryThreshold, symbolizer: nil,
            countsSizes: options.sections.contains(.histogram), countsThreads: options.sections.contains(.threads),
            countedLeakKinds: options.leakKinds)
        let presenter = StackPresenter(
            reader: reader, symbolizer: nil, keepsAllocatorFrames: options.keepsAllocatorFrames)
        let digest = ReportDigest(pass: pass, options: options, presenter: presenter)
        return (digest, reader.diagnostics.count == diagnosticsBefore)
    }

    /// Resolves the frames `digest` prints, as a default report would now, and keeps them in it with what
    /// decided them (``StoredFrames``). `traceStart`: the process's start (``ProcessDetails/startRealtime``).
    /// Costs one symbolization of the printed addresses (an llvm-symbolizer run).
    public static func resolveFrames(
        of digest: inout ReportDigest, traceStart: UInt64?, symbolizer: Symbolizer = frameSymbolizer()
    ) {
        symbolizer.traceStart = traceStart
        let presenter = StackPresenter(
            resolver: FrameResolver(modules: digest.modules, symbolizer: symbolizer), stacks: digest.stacks,
            generations: digest.generations, keepsAllocatorFrames: defaultOptions.keepsAllocatorFrames)
        let printed = digest.printedStacks
        presenter.prepareFrames(printed)
        var byStack: [UInt32: [ReportFrame]] = [:]
        for id in printed { byStack[id] = presenter.frames(id) }
        // Taken after resolving: a symbolizer that failed on the way describes itself differently.
        let fingerprint = symbolizer.inputsFingerprint(modules: StoredFrames.modules(of: byStack, in: digest.modules))
        digest.frames = StoredFrames(fingerprint: fingerprint, byStack: byStack)
    }

    /// A symbolizer as a default report makes it, for ``resolveFrames(of:traceStart:symbolizer:)``.
    public static func frameSymbolizer() -> Symbolizer { Symbolizer(backend: defaultOptions.symbolizer) }

    /// Appends `digest` (an ``analyze(_:)`` of the same events) to the compressed trace at `path` as its
    /// stored analysis. False when the file is not a compressed trace ending on a record boundary or cannot
    /// be written; the trace is then as it was, or ends in a record every reader ignores.
    @discardableResult
    public static func store(_ digest: ReportDigest, inTraceAt path: String, writer: String) -> Bool {
        TraceIndexRecord.append(encode(digest, options: defaultOptions, writer: writer), toTraceAt: path)
    }

    /// Reads the trace at `path` once and stores its analysis in it (traces `run` did not summarize), with
    /// the printed frames when `resolvingFrames`.
    @discardableResult
    public static func store(inTraceAt path: String, writer: String, resolvingFrames: Bool) -> Bool {
        guard let reader = try? TraceReader(path: path) else { return false }
        var (digest, isStorable) = analyze(reader)
        guard isStorable else { return false }
        if resolvingFrames { resolveFrames(of: &digest, traceStart: reader.process?.startRealtime) }
        return store(digest, inTraceAt: path, writer: writer)
    }
}
