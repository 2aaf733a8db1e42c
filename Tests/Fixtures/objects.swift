// A Swift program whose class instances leak: every Node comes from swift_allocObject (via swift_slowAlloc),
// which reports fold away, so the first frame shown is Swift code with a demangled name.
// Leaks 5 Nodes (24 B each: 16 B object header + one Int) from leakNodes(count:).

final class Node {
    let value: Int
    init(value: Int) { self.value = value }
}

@inline(never)
func leakNodes(count: Int) {
    for index in 0..<count { _ = Unmanaged.passRetained(Node(value: index)) }
}

leakNodes(count: 5)
