import CMallocTraceFormat
import MallocTraceFormat

/// A random multi-thread trace built the way the writer lays one out, together with the heap events a
/// reader must deliver for it: every event of every thread in sequence order, realloc split as section
/// 6.4 of docs/trace-format.md says. Threads take turns in runs of random length, chunks end at random
/// points, and fields take values of every varint length (1 to 10 bytes), so that both the decoder's
/// common-event loop and its general path are exercised, at chunk ends too.
struct RandomTrace {
    private(set) var bytes: [UInt8] = []
    /// In sequence order.
    private(set) var expected: [AllocatorEvent] = []
    private(set) var stacks: [UInt32: [UInt64]] = [:]

    private struct Thread {
        var id: UInt32
        var chunk = Events()
        var eventsInChunk = 0
        var chunkLength = 0
        var time: UInt64 = 0
    }

    init(seed: UInt64, threadCount: Int, eventCount: Int) {
        var random = SplitMix64(seed: seed)
        var threads = (0..<threadCount).map { Thread(id: 100 + UInt32($0)) }
        for index in threads.indices { threads[index].chunkLength = Int(random.next() % 300) + 1 }
        var chunks: [(thread: UInt32, events: Events)] = []
        var sequence: UInt64 = 0
        var produced = 0
        while produced < eventCount {
            let index = Int(random.next() % UInt64(threadCount))
            let run = Int(random.next() % 40) + 1
            for _ in 0..<run {
                sequence += random.next() % 4 == 0 ? 2 : 1  // gaps happen (section 7)
                produced += add(to: &threads[index], sequence: &sequence, random: &random)
                threads[index].eventsInChunk += 1
                if threads[index].eventsInChunk >= threads[index].chunkLength {
                    chunks.append((threads[index].id, threads[index].chunk))
                    threads[index].chunk = Events()  // a new chunk starts with zero delta state and time
                    threads[index].time = 0
                    threads[index].eventsInChunk = 0
                    threads[index].chunkLength = Int(random.next() % 300) + 1
                }
            }
        }
        for thread in threads { chunks.append((thread.id, thread.chunk)) }
        var builder = TraceBuilder()
        builder.process()
        for chunk in chunks {
            builder.chunk(thread: chunk.thread, events: chunk.events, slack: Int(random.next() % 24))
        }
        builder.end(lastSequence: sequence)
        bytes = builder.bytes
        expected.sort { $0.sequence < $1.sequence }
    }

    /// A value whose varint has a random length from 1 to 10 bytes, mostly short.
    private static func value(_ random: inout SplitMix64) -> UInt64 {
        let bits = random.next() % 8 == 0 ? random.next() % 64 + 1 : random.next() % 20 + 1
        return random.next() >> (64 - bits)
    }

    private static func address(_ random: inout SplitMix64) -> UInt64 {
        switch random.next() % 16 {
        case 0: return 0  // a failed call
        case 1: return 0xFFFF_8000_0000_0000 | (random.next() % 4096) * 16  // far away: long deltas
        case 2: return 0x7F00_0000_0000 + (random.next() % (1 << 30)) * 16
        default: return 0x5555_0000_0000 + (random.next() % (1 << 16)) * 16
        }
    }

    /// Appends one event (or a side event) to `thread`'s chunk; returns the number of heap events.
    private mutating func add(to thread: inout Thread, sequence: inout UInt64, random: inout SplitMix64) -> Int {
        let stack = UInt32(random.next() % 6 == 0 ? Self.value(&random) & 0xFFFF_FFFF : random.next() % 8)
        switch random.next() % 20 {
        case 0:
            thread.time = Self.value(&random)
            thread.chunk.time(thread.time)
            return 0
        case 1 where stacks[stack] == nil:  // the writer defines each stack once
            let frames = (0..<Int(random.next() % 5)).map { _ in Self.address(&random) }
            stacks[stack] = frames
            thread.chunk.stack(UInt64(stack), frames)
            return 0
        case 2, 3:
            let before = sequence
            sequence += 1
            let size = random.next() % 3 == 0 ? 0 : Self.value(&random)
            let old = random.next() % 3 == 0 ? 0 : Self.address(&random)
            let new = Self.address(&random)
            thread.chunk.realloc(before: before, after: sequence, size: size, from: old, to: new, stack: UInt64(stack))
            let release = AllocatorEvent(
                kind: .release, function: .realloc, sequence: before, threadID: thread.id, time: thread.time,
                size: 0, address: old, stackID: stack, isPrimary: new == 0 && size == 0)
            if new == 0 && size == 0 && old != 0 {
                expected.append(release)
                return 1
            }
            if old != 0 && new != 0 { expected.append(release) }
            expected.append(
                AllocatorEvent(
                    kind: new == 0 ? .failedAllocation : .allocation, function: .realloc, sequence: sequence,
                    threadID: thread.id, time: thread.time, size: size, address: new, stackID: stack))
            return 1
        case 4:
            let size = Self.value(&random)
            let address = Self.address(&random)
            let alignment = Self.value(&random)
            thread.chunk.allocation(
                MT_EVENT_ALIGNED_ALLOC, seq: sequence, size: size, at: address, stack: UInt64(stack),
                alignment: alignment)
            expected.append(
                AllocatorEvent(
                    kind: address == 0 ? .failedAllocation : .allocation, function: .alignedAlloc, sequence: sequence,
                    threadID: thread.id, time: thread.time, size: size, address: address, stackID: stack,
                    alignment: alignment))
            return 1
        case 5...11:
            let address = Self.address(&random)
            thread.chunk.free(seq: sequence, at: address)
            expected.append(
                AllocatorEvent(
                    kind: .release, function: .free, sequence: sequence, threadID: thread.id, time: thread.time,
                    size: 0, address: address, stackID: 0))
            return 1
        default:
            let isCalloc = random.next() % 4 == 0
            let size = Self.value(&random)
            let address = Self.address(&random)
            thread.chunk.allocation(
                isCalloc ? MT_EVENT_CALLOC : MT_EVENT_MALLOC, seq: sequence, size: size, at: address,
                stack: UInt64(stack))
            expected.append(
                AllocatorEvent(
                    kind: address == 0 ? .failedAllocation : .allocation, function: isCalloc ? .calloc : .malloc,
                    sequence: sequence, threadID: thread.id, time: thread.time, size: size, address: address,
                    stackID: stack))
            return 1
        }
    }
}
