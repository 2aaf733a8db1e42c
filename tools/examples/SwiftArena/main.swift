// A bump arena in Swift annotated with MallocTraceAPI: its 100 blocks of 64 B appear in malloctrace's reports
// as "[pool swift-arena]" with this file's stacks; the 64 KiB backing block is counted once. Runs the same
// untraced. `swift run malloctrace-swift-arena`, or traced:
//   malloctrace run -- .build/debug/malloctrace-swift-arena && malloctrace report malloctrace.*.mtrace
import MallocTraceAPI

struct Arena {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var used = 0
    let pool: MallocTracePool

    init(name: String, capacity: Int) {
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        self.capacity = capacity
        pool = MallocTracePool(name: name)
        pool.declareBacking(base)
    }

    mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        let rounded = (size + 15) & ~15
        guard used + rounded <= capacity else { return nil }
        let block = base + used
        used += rounded
        pool.allocate(block, size: size)
        return block
    }

    func release() {
        pool.destroy()
        base.deallocate()
    }
}

var arena = Arena(name: "swift-arena", capacity: 64 * 1024)
var checksum = 0
for index in 0..<100 {
    guard let block = arena.allocate(64) else { break }
    block.storeBytes(of: index, as: Int.self)
    checksum += block.load(as: Int.self)
}
MallocTrace.mark("filled")
arena.release()
print("checksum \(checksum)")
