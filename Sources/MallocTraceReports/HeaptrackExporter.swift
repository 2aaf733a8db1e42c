public import MallocTraceFormat

/// Writes a trace in heaptrack's own (interpreted, version 3) text format, which `heaptrack_print` and
/// `heaptrack_gui` read: `v` version, `X` command, `I` system, `s` strings (sized), `i` instruction pointers
/// with their frames (inlined calls as extra frames), `t` trace nodes (`ip parent`, the caller being the
/// parent), `a` allocation infos (size and trace), `+`/`-` allocations and frees by allocation info, `c` time
/// stamps in milliseconds. Every number is lowercase hex.
///
/// The events go through ``consume(_:)`` during the pass (memory: the live blocks and one line per event);
/// ``render(profile:)`` then puts the tables in front of them.
public final class HeaptrackExporter {
    /// heaptrack 1.4.0's version number and file format version 3 (sized strings).
    static let versionLine = "v 10400 3\n"

    private var body: [UInt8] = []
    private var allocationInfos: [(stackID: UInt32, size: UInt64)] = []
    private var infoIndex: [UInt64: [UInt32: Int]] = [:]
    private var live: [UInt64: Int] = [:]
    private var lastMillisecond: UInt64 = 0

    public init() {}

    private static let digits = Array("0123456789abcdef".utf8)

    /// `mode value` with the value in lowercase hex, appended without building strings (one line per event).
    private func line(_ mode: UInt8, _ value: UInt64) {
        body.append(mode)
        body.append(0x20)
        var shift = 60
        while shift > 0 && (value >> UInt64(shift)) == 0 { shift -= 4 }
        while shift >= 0 {
            body.append(Self.digits[Int((value >> UInt64(shift)) & 0xF)])
            shift -= 4
        }
        body.append(0x0A)
    }

    /// Takes the pass's events in order.
    public func consume(_ events: Span<AllocatorEvent>) {
        for index in events.indices {
            let event = events[index]
            let millisecond = event.time / 1_000_000
            if millisecond > lastMillisecond {
                lastMillisecond = millisecond
                line(UInt8(ascii: "c"), millisecond)
            }
            switch event.kind {
            case .allocation:
                let info: Int
                if let existing = infoIndex[event.size]?[event.stackID] {
                    info = existing
                } else {
                    allocationInfos.append((event.stackID, event.size))
                    info = allocationInfos.count - 1
                    infoIndex[event.size, default: [:]][event.stackID] = info
                }
                live[event.address] = info
                line(UInt8(ascii: "+"), UInt64(info))
            case .release:
                guard let info = live.removeValue(forKey: event.address) else { continue }
                line(UInt8(ascii: "-"), UInt64(info))
            case .failedAllocation, .control:
                continue
            }
        }
    }

    /// The whole file: tables built from `profile` (the same pass's stacks), then the events.
    public func render(profile: StackProfile) -> [UInt8] {
        var out = Array(Self.versionLine.utf8)
        out += Array("X \(Self.clean(profile.process?.commandLine ?? "unknown"))\n".utf8)
        out += Array("I 1000 100000\n".utf8)
        var strings: [String: Int] = [:]
        func string(_ text: String) -> UInt64 {
            if let index = strings[text] { return UInt64(index) }
            let clean = Self.clean(text)
            out += Array("s \(String(clean.utf8.count, radix: 16)) \(clean)\n".utf8)
            strings[text] = strings.count + 1
            return UInt64(strings.count)
        }
        func hexLine(_ mode: String, _ values: [UInt64]) {
            out += Array((mode + values.map { " " + String($0, radix: 16) }.joined() + "\n").utf8)
        }
        // Instruction pointers, 1-based, one per return address (and inlining depth).
        var ipIndex: [String: UInt64] = [:]
        func ip(_ frames: [ReportFrame]) -> UInt64 {
            let address = frames.first?.address ?? 1
            let key = "\(address) \(frames.count)"
            if let existing = ipIndex[key] { return existing }
            var values = [address, frames.first?.module.map(string) ?? 0]
            if frames.isEmpty {
                values.append(string("(no stack recorded)"))
            } else if let first = frames.first, first.function != nil {
                values.append(string(CallTree.name(of: first)))
                if first.file != nil {
                    for (position, frame) in frames.enumerated() {
                        if position > 0 { values.append(string(CallTree.name(of: frame))) }
                        values.append(frame.file.map(string) ?? 0)
                        values.append(UInt64(max(0, frame.line ?? 0)))
                    }
                }
            } else {
                values.append(string(frames.first?.location ?? "?"))
            }
            hexLine("i", values)
            ipIndex[key] = UInt64(ipIndex.count + 1)
            return UInt64(ipIndex.count)
        }
        // Trace nodes, 1-based: (ip, parent), from the outermost frame in.
        var traceIndex: [UInt64: [UInt64: UInt64]] = [:]
        var traceOfStack: [UInt32: UInt64] = [:]
        var traceCount: UInt64 = 0
        for stack in profile.stacks {
            var locations = Array(stack.locations.reversed())
            if locations.isEmpty { locations = [[]] }
            var parent: UInt64 = 0
            for frames in locations {
                let pointer = ip(frames)
                if let existing = traceIndex[parent]?[pointer] {
                    parent = existing
                    continue
                }
                traceCount += 1
                hexLine("t", [pointer, parent])
                traceIndex[parent, default: [:]][pointer] = traceCount
                parent = traceCount
            }
            traceOfStack[stack.stackID] = parent
        }
        for info in allocationInfos {
            hexLine("a", [info.size, traceOfStack[info.stackID] ?? 0])
        }
        out += body
        hexLine("c", [lastMillisecond + 1])
        return out
    }

    /// One line of text: newlines would end the record.
    static func clean(_ text: String) -> String {
        text.contains("\n") || text.contains("\r")
            ? String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 }) : text
    }
}
