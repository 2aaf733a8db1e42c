// A Swift program that uses classes, arrays, dictionaries, strings, closures, print and a global enum
// holding a class instance, and owns nothing unreachable at exit.
// Usage: fixture-gateswift clean   `malloctrace check` must find nothing (runtime caches are reachable)
//        fixture-gateswift leak    the same plus one leaked Box (MARK:gateswift-leak)

final class Box {
    var values: [Int]
    init(_ values: [Int]) { self.values = values }
}

enum Holder {
    case empty
    case box(Box)
}

var holder = Holder.box(Box([1, 2, 3]))
var table: [String: [Int]] = [:]

@inline(never)
func leakOne() {
    _ = Unmanaged.passRetained(Box([4, 5, 6]))  // MARK:gateswift-leak
}

@inline(never)
func work() -> Int {
    var total = 0
    for index in 0..<200 {
        let key = "key \(index % 13) with some padding to make it long"
        table[key, default: []].append(index)
        let doubled = table[key, default: []].map { $0 * 2 }
        total += doubled.reduce(0, +)
    }
    return total
}

let total = work()
print("total \(total), keys \(table.count)")
if case .box(let box) = holder { print("held \(box.values.count)") }
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "leak" { leakOne() }
