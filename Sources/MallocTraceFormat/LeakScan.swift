internal import CMallocTraceFormat

/// How a block stood when the process scanned its memory for pointers (the exit-time leak scan), as
/// LeakSanitizer and valgrind memcheck define the kinds.
public enum LeakKind: UInt8, Sendable, CaseIterable, Codable, Comparable, CustomStringConvertible {
    /// A pointer to its start was reachable from a root: globals, stacks, registers, TLS.
    case reachable = 0
    /// Reachable only from leaked blocks.
    case indirect = 1
    /// Reachable from a root only through pointers into its interior.
    case possible = 2
    /// No pointer to it anywhere (or the one member of a rootless cycle chosen as its root).
    case definite = 3

    /// The lowercase name used in options, suppressions and JSON.
    public var description: String {
        switch self {
        case .reachable: "reachable"
        case .indirect: "indirect"
        case .possible: "possible"
        case .definite: "definite"
        }
    }

    public init?(name: String) {
        guard let kind = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = kind
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// 0 for the most reachable kind up to 3 for the least: reachable, possible, indirect, definite.
    var reachabilityRank: Int {
        switch self {
        case .reachable: 0
        case .possible: 1
        case .indirect: 2
        case .definite: 3
        }
    }
}

/// What the process's exit-time (or on-demand) leak scan found: the kind of every block live at that
/// moment. Present only in traces recorded with leak scanning on (`check`, `run --leak-kinds`).
public struct LeakScan: Sendable {
    public enum Trigger: Sendable, Equatable, CustomStringConvertible {
        case exit, underscoreExit, quickExit, onDemand, unknown(UInt32)

        init(_ raw: UInt32) {
            switch raw {
            case MT_LEAK_SCAN_AT_EXIT.rawValue: self = .exit
            case MT_LEAK_SCAN_AT_UNDERSCORE_EXIT.rawValue: self = .underscoreExit
            case MT_LEAK_SCAN_ON_DEMAND.rawValue: self = .onDemand
            case MT_LEAK_SCAN_AT_QUICK_EXIT.rawValue: self = .quickExit
            default: self = .unknown(raw)
            }
        }

        public var description: String {
            switch self {
            case .exit: "exit"
            case .underscoreExit: "_exit"
            case .quickExit: "quick_exit"
            case .onDemand: "on demand"
            case .unknown(let raw): "trigger \(raw)"
            }
        }
    }

    public var trigger: Trigger
    /// The global sequence number when the live set was frozen.
    public var sequence: UInt64
    /// Nanoseconds since start when the scan began, and how long it took.
    public var time: UInt64
    public var duration: UInt64
    public var threadsScanned: UInt32
    /// Threads that did not stop in time: their stacks were not scanned, so blocks only they held may be
    /// reported as leaks.
    public var threadsMissed: UInt32
    /// Scanned block addresses, ascending, and the kind of each.
    private var addresses: [UInt64]
    private var kinds: [LeakKind]

    /// Number of blocks the scan classified.
    public var blockCount: Int { addresses.count }

    /// The kind of pool blocks (malloctrace.h) by the reader's stack id of their blocks; set by a pass.
    private var poolBlockKinds: [UInt32: LeakKind] = [:]

    /// The kind of the live block at `address` allocated from `stackID`: a heap block's as the scan gave it;
    /// a pool block's (``PoolBlocks/isKey(_:)``) as ``classifyPoolBlocks(pools:stackPools:)`` derived it.
    /// Nil when neither knows the block. O(log n).
    public func kind(ofBlockAt address: UInt64, stackID: UInt32) -> LeakKind? {
        PoolBlocks.isKey(address) ? poolBlockKinds[stackID] : kind(ofBlockAt: address)
    }

    /// The process's scan sees heap blocks only; a pool's blocks live inside the heap blocks it declared as
    /// its backing (malloctrace_pool_backing), so they stand as those blocks stand: the most reachable kind
    /// among the pool's backing blocks the scan classified (a pool whose chunks are all lost lost its blocks
    /// too; one whose chunks are still reachable may yet give them back). Pools without a classified backing
    /// block (memory from mmap, or no declaration) leave their blocks unclassified, as blocks the scan did not
    /// see. `stackPools` maps the reader's stack ids of pool blocks to their pool. O(backing blocks × log n).
    mutating func classifyPoolBlocks(pools: [UInt32: TracePool], stackPools: [UInt32: UInt32]) {
        var kindByPool: [UInt32: LeakKind] = [:]
        for (id, pool) in pools {
            for backing in pool.backingBlocks {
                guard let kind = kind(ofBlockAt: backing) else { continue }
                if kind.reachabilityRank < kindByPool[id]?.reachabilityRank ?? Int.max { kindByPool[id] = kind }
            }
        }
        poolBlockKinds = stackPools.compactMapValues { kindByPool[$0] }
    }

    /// The kind the scan gave the block at `address`, or nil when the scan did not see such a block.
    /// O(log n).
    public func kind(ofBlockAt address: UInt64) -> LeakKind? {
        var low = 0
        var high = addresses.count
        while low < high {
            let middle = (low + high) / 2
            if addresses[middle] < address { low = middle + 1 } else { high = middle }
        }
        return low < addresses.count && addresses[low] == address ? kinds[low] : nil
    }

    /// One LEAK_SCAN record, decoded.
    struct Part {
        var trigger: UInt32
        var sequence: UInt64
        var time: UInt64
        var duration: UInt64
        var part: UInt32
        var threadsScanned: UInt32
        var threadsMissed: UInt32
        var totalBlocks: UInt32
        var addresses: [UInt64]
        var kinds: [LeakKind]

        var scanKey: [UInt64] { [sequence, time, UInt64(trigger), UInt64(totalBlocks)] }
    }

    /// Decodes one record's payload; nil (with the reason) when it is damaged.
    static func part(_ bytes: UnsafeRawBufferPointer, at offset: Int, length: Int) -> Result<Part, DecodeFailure> {
        let fixed = MemoryLayout<mt_leak_scan_record_t>.size
        guard length >= fixed else {
            return .failure(DecodeFailure(offset: offset, reason: "leak scan record of \(length) bytes is too small"))
        }
        var cursor = ByteCursor(bytes, from: offset, to: offset + length)
        let count = Int(cursor.field(\mt_leak_scan_record_t.entry_count, of: offset))
        // Every entry takes at least one byte: a count beyond the payload is damage, not a reason to reserve.
        guard count <= length - fixed else {
            return .failure(DecodeFailure(offset: offset, reason: "leak scan record claims \(count) entries"))
        }
        var part = Part(
            trigger: cursor.field(\mt_leak_scan_record_t.trigger, of: offset),
            sequence: cursor.field(\mt_leak_scan_record_t.scan_sequence, of: offset),
            time: cursor.field(\mt_leak_scan_record_t.scan_time_ns, of: offset),
            duration: cursor.field(\mt_leak_scan_record_t.duration_ns, of: offset),
            part: cursor.field(\mt_leak_scan_record_t.part, of: offset),
            threadsScanned: cursor.field(\mt_leak_scan_record_t.threads_scanned, of: offset),
            threadsMissed: cursor.field(\mt_leak_scan_record_t.threads_missed, of: offset),
            totalBlocks: cursor.field(\mt_leak_scan_record_t.total_blocks, of: offset), addresses: [], kinds: [])
        part.addresses.reserveCapacity(count)
        part.kinds.reserveCapacity(count)
        cursor.position = offset + fixed
        var previous: UInt64 = 0
        do throws(DecodeFailure) {
            for _ in 0..<count {
                let raw = try cursor.varint()
                let (address, overflow) = previous.addingReportingOverflow(raw >> 3)
                guard !overflow, let kind = LeakKind(rawValue: UInt8(raw & 7)) else {
                    throw DecodeFailure(offset: cursor.position, reason: "leak scan entry is out of range")
                }
                part.addresses.append(address)
                part.kinds.append(kind)
                previous = address
            }
        } catch {
            return .failure(error)
        }
        return .success(part)
    }

    /// The last complete scan among `parts` (in file order): the one whose parts add up to its total.
    static func lastComplete(_ parts: [Part]) -> LeakScan? {
        var scans: [[UInt64]: [Part]] = [:]
        var order: [[UInt64]] = []
        for part in parts {
            if scans[part.scanKey] == nil { order.append(part.scanKey) }
            scans[part.scanKey, default: []].append(part)
        }
        for key in order.reversed() {
            guard var members = scans[key], let first = members.first else { continue }
            members.sort { $0.part < $1.part }
            let entries = members.reduce(0) { $0 + $1.addresses.count }
            // Parts must be 0, 1, 2, ... once each; a repeated part number is damage.
            guard entries == Int(first.totalBlocks),
                members.enumerated().allSatisfy({ $0.offset == Int($0.element.part) })
            else { continue }
            var addresses = members.flatMap(\.addresses)
            var kinds = members.flatMap(\.kinds)
            // The writer emits ascending addresses across parts: sort only a scan that is not (hostile input).
            if addresses.indices.dropFirst().contains(where: { addresses[$0 - 1] >= addresses[$0] }) {
                let order = addresses.indices.sorted { addresses[$0] < addresses[$1] }
                (addresses, kinds) = (order.map { addresses[$0] }, order.map { kinds[$0] })
            }
            return LeakScan(
                trigger: Trigger(first.trigger), sequence: first.sequence, time: first.time,
                duration: first.duration, threadsScanned: first.threadsScanned, threadsMissed: first.threadsMissed,
                addresses: addresses, kinds: kinds)
        }
        return nil
    }
}

extension LeakKind {
    /// What counts as a leak unless told otherwise: LeakSanitizer's choice.
    public static let countedByDefault: Set<LeakKind> = [.definite, .indirect]

    /// Parses `definite,indirect`, `all` or `none`; nil with the offending word on an unknown name.
    public static func parseList(_ text: String) -> Result<Set<LeakKind>, LeakKindListError> {
        var kinds = Set<LeakKind>()
        for word in text.split(separator: ",").map({ $0.filter { $0 != " " }.lowercased() }) {
            switch word {
            case "all": kinds.formUnion(LeakKind.allCases)
            case "none", "": continue
            default:
                guard let kind = LeakKind(name: word) else { return .failure(LeakKindListError(word: word)) }
                kinds.insert(kind)
            }
        }
        return .success(kinds)
    }
}

/// An unknown leak kind in a list.
public struct LeakKindListError: Error, CustomStringConvertible {
    public var word: String
    public var description: String {
        "unknown leak kind '\(word)' (expected definite, indirect, possible, reachable, all or none)"
    }
}

extension LeakScan {
    /// The LEAK_SCAN payload at `offset` with each address that `keys` maps replaced by its key, entries
    /// re-sorted (for ``KeyedTraceEncoder``); nil when the record is damaged (it is then copied as it is, and
    /// the reader reports it as before).
    static func translated(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, length: Int, keys: (UInt64) -> UInt64?
    ) -> [UInt8]? {
        guard case .success(let part) = Self.part(bytes, at: offset, length: length) else { return nil }
        let entries = zip(part.addresses, part.kinds).map { (keys($0).map { BlockKey.of(sequence: $0) } ?? $0, $1) }
            .sorted { $0.0 < $1.0 }
        var payload = Array(
            UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + MemoryLayout<mt_leak_scan_record_t>.size]))
        var previous: UInt64 = 0
        for (address, kind) in entries {
            payload.appendVarint((address &- previous) << 3 | UInt64(kind.rawValue))
            previous = address
        }
        return payload
    }
}
