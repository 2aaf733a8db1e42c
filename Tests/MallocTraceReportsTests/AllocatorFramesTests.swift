import Testing

@testable import MallocTraceReports

private func frame(_ function: String?, module: String = "/usr/bin/app") -> ReportFrame {
    var frame = ReportFrame(address: 0x1000, module: module, offset: 0x10)
    frame.function = function
    return frame
}

@Suite struct AllocatorFramesTests {
    @Test(arguments: [
        "operator new(unsigned long)", "operator new[](unsigned long)",
        "operator new(unsigned long, std::nothrow_t const&)",
        "std::__new_allocator<int>::allocate(unsigned long, void const*)",
        "std::allocator_traits<std::allocator<int> >::allocate(std::allocator<int>&, unsigned long)",
        "std::_Vector_base<int, std::allocator<int> >::_M_allocate(unsigned long)",
        "swift_slowAlloc", "swift_allocObject", "strdup", "g_malloc0", "PyMem_Malloc", "_PyObject_Malloc",
        "xmalloc", "xmalloc.part.0", "__rust_alloc", "alloc::raw_vec::finish_grow",
    ])
    func wrappersAreAllocatorFrames(function: String) {
        #expect(AllocatorFrames.isAllocatorFrame(frame(function)))
    }

    @Test(arguments: [
        "main", "std::allocator<int>::~allocator()", "std::vector<int, std::allocator<int> >::push_back(int const&)",
        "operator delete(void*)", "strdupa_user", "g_malloc_wrapper_of_mine",
        "Fixture.leakNodes(count: Swift.Int) -> ()",
    ])
    func programFramesAreNot(function: String) {
        #expect(!AllocatorFrames.isAllocatorFrame(frame(function)))
    }

    @Test(arguments: [
        "Swift._ContiguousArrayBuffer.init(_uninitializedCount: Swift.Int, minimumCapacity: Swift.Int)"
            + " -> Swift._ContiguousArrayBuffer<A>",
        "merged generic specialization <Swift.UInt64> of Swift.Array.init(repeating: A, count: Swift.Int)"
            + " -> Swift.Array<A>",
        "specialized Swift.Array._createNewBuffer(bufferIsUnique: Swift.Bool, minimumCapacity: Swift.Int,"
            + " growForAppend: Swift.Bool) -> ()",
        "Fixture.Node.__allocating_init() -> Fixture.Node",
    ])
    func swiftStandardLibraryLayersFold(function: String) {
        #expect(AllocatorFrames.isAllocatorFrame(frame(function)))
    }

    @Test func swiftStandardLibraryModuleFoldsEvenUnnamed() {
        #expect(
            AllocatorFrames.isAllocatorFrame(
                frame("anything", module: "/opt/swift/usr/lib/swift/linux/libswiftCore.so")))
        #expect(
            !AllocatorFrames.isAllocatorFrame(frame("generic specialization <Fixture.Node> of Fixture.make<A>() -> A")))
    }

    @Test func theTracerIsAlwaysFolded() {
        #expect(AllocatorFrames.isAllocatorFrame(frame(nil, module: "/x/libmalloctrace.so")))
        #expect(!AllocatorFrames.isAllocatorFrame(frame(nil)))
    }

    @Test func onlyLeadingFramesFold() {
        let stack = [frame("operator new(unsigned long)"), frame("make"), frame("strdup"), frame("main")]
        #expect(AllocatorFrames.fold(stack).map(\.function) == ["make", "strdup", "main"])
        let allocatorOnly = [frame("malloc"), frame("xmalloc")]
        #expect(AllocatorFrames.fold(allocatorOnly) == allocatorOnly)
        #expect(AllocatorFrames.fold([]) == [])
    }
}

@Suite struct StackPatternTests {
    @Test func substringsWildcardsAndAnchors() {
        #expect(StackPattern("leak").matches("leak_hundreds"))
        #expect(StackPattern("hundreds").matches("leak_hundreds"))
        #expect(!StackPattern("^hundreds").matches("leak_hundreds"))
        #expect(StackPattern("^leak").matches("leak_hundreds"))
        #expect(StackPattern("hundreds$").matches("leak_hundreds"))
        #expect(!StackPattern("leak$").matches("leak_hundreds"))
        #expect(StackPattern("^leak_hundreds$").matches("leak_hundreds"))
        #expect(StackPattern("l*h*s").matches("leak_hundreds"))
        #expect(!StackPattern("^l*x").matches("leak_hundreds"))
        #expect(
            StackPattern("std::vector<*>::push_back").matches("std::vector<int, std::allocator<int> >::push_back(int)"))
        #expect(StackPattern("*").matches(""))
        #expect(StackPattern("").matches("anything"))
    }

    @Test func framesMatchByFunctionModuleOrFile() {
        var value = frame("leak_hundreds", module: "/opt/app/libthing.so.1")
        value.file = "/src/thing/leaks.c"
        #expect(StackPattern("leak_").matches(value))
        #expect(StackPattern("libthing").matches(value))
        #expect(StackPattern("^/opt/app/").matches(value))
        #expect(StackPattern("leaks.c").matches(value))
        #expect(!StackPattern("libother").matches(value))
    }
}

@Suite struct FormattingTests {
    @Test func pluralsAndSizes() {
        #expect(Formatting.counted(1, "address") == "1 address")
        #expect(Formatting.counted(3, "address") == "3 addresses")
        #expect(Formatting.counted(2, "block") == "2 blocks")
        #expect(TextRenderer.size(0) == "0 B")
        #expect(TextRenderer.size(512) == "512 B")
        #expect(TextRenderer.size(1024) == "1 KiB")
        #expect(TextRenderer.size(1 << 30) == "1 GiB")
    }
}
