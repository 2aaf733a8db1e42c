import Foundation

/// Recognizes frames that belong to the allocator rather than to the program: the tracer's own code and
/// the wrappers programs allocate through (operator new, std::allocator, swift_allocObject, strdup,
/// g_malloc, PyMem_Malloc, xmalloc, Rust's __rust_alloc, …). Reports fold such frames off the top of each
/// stack so that the first frame shown is the code that asked for memory.
public enum AllocatorFrames {
    /// C functions and wrappers, compared with the frame's function name without a GCC clone suffix
    /// (`.isra.0`, `.part.1`, `.cold`).
    static let names: Set<String> = [
        // libc
        "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "aligned_alloc", "memalign",
        "valloc", "pvalloc", "__libc_malloc", "__libc_calloc", "__libc_realloc", "__libc_memalign",
        "strdup", "strndup", "__strdup", "__strndup", "wcsdup",
        // malloctrace.h's inline functions (frames of their own at -O0)
        "malloctrace_pool_alloc", "malloctrace__lookup",
        // Swift runtime
        "swift_slowAlloc", "swift_slowAllocTyped", "swift_allocObject", "_swift_allocObject_", "swift_allocBox",
        "swift_allocEmptyBox", "swift_bufferAllocate", "swift::swift_slowAlloc", "swift_coroFrameAlloc",
        // GLib
        "g_malloc", "g_malloc0", "g_realloc", "g_try_malloc", "g_try_malloc0", "g_try_realloc", "g_malloc_n",
        "g_malloc0_n", "g_realloc_n", "g_try_malloc_n", "g_try_malloc0_n", "g_try_realloc_n", "g_strdup",
        "g_strndup", "g_memdup", "g_memdup2", "g_slice_alloc", "g_slice_alloc0", "g_slice_copy",
        "g_aligned_alloc", "g_aligned_alloc0",
        // CPython
        "PyMem_Malloc", "PyMem_Calloc", "PyMem_Realloc", "PyMem_RawMalloc", "PyMem_RawCalloc", "PyMem_RawRealloc",
        "PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "_PyMem_RawMalloc", "_PyMem_RawCalloc",
        "_PyMem_RawRealloc", "_PyObject_Malloc", "_PyObject_Calloc", "_PyObject_Realloc", "pymalloc_alloc",
        "_PyMem_DebugRawAlloc", "_PyMem_DebugRawMalloc", "_PyMem_DebugRawCalloc", "_PyMem_DebugRawRealloc",
        "_PyMem_DebugMalloc", "_PyMem_DebugCalloc", "_PyMem_DebugRealloc", "PyObject_GC_Malloc",
        // gnulib and friends
        "xmalloc", "xcalloc", "xrealloc", "xzalloc", "xstrdup", "xstrndup", "xmemdup", "xnmalloc", "xcharalloc",
        "x2realloc", "x2nrealloc", "xreallocarray", "ximalloc", "xicalloc", "xizalloc", "xirealloc", "ximemdup",
        "ximemdup0", "xireallocarray", "xinmalloc",
        // Rust
        "__rust_alloc", "__rust_alloc_zeroed", "__rust_realloc", "__rdl_alloc", "__rdl_alloc_zeroed", "__rdl_realloc",
        "__rg_alloc", "__rg_alloc_zeroed", "__rg_realloc", "alloc::alloc::alloc", "alloc::alloc::alloc_zeroed",
        "alloc::alloc::realloc", "alloc::alloc::exchange_malloc", "alloc::alloc::Global::alloc_impl",
        "alloc::raw_vec::finish_grow", "<alloc::alloc::Global as core::alloc::Allocator>::allocate",
    ]

    /// C++ allocation layers: a prefix of the demangled name, and what must follow the template arguments
    /// (nil: anything). libstdc++'s containers allocate through `_M_allocate`, `_M_get_node`,
    /// `_M_allocate_node` and friends, which only wrap `allocator_traits::allocate`.
    static let layers: [(prefix: String, member: String?)] = [
        ("operator new(", nil), ("operator new[](", nil), ("malloctrace_pool_alloc(", nil),
        ("std::__new_allocator<", ">::allocate("), ("__gnu_cxx::new_allocator<", ">::allocate("),
        ("std::allocator<", ">::allocate("), ("std::allocator_traits<", ">::allocate("),
        ("__gnu_cxx::__alloc_traits<", ">::allocate("),
        ("std::_Vector_base<", ">::_M_allocate("), ("std::_Deque_base<", ">::_M_allocate_"),
        ("std::_Rb_tree<", ">::_M_get_node("), ("std::__cxx11::_List_base<", ">::_M_get_node("),
        ("std::_List_base<", ">::_M_get_node("), ("std::__detail::_Hashtable_alloc<", ">::_M_allocate_"),
        ("std::_Fwd_list_base<", ">::_M_get_node("),
    ]

    /// The Swift standard library's modules: from a program's point of view every frame in them is a layer
    /// between its own line and the allocation (array and string storage, dictionary resizing, ...).
    static let swiftStandardLibraryModules = ["libswiftCore.so", "libswiftSwiftOnoneSupport.so"]

    /// True for the Swift standard library's code, also where the compiler copied it into the program
    /// (`generic specialization <…> of Swift.Array…`, `merged Swift.…`), and for the compiler-made
    /// `__allocating_init` that wraps `swift_allocObject` for `Foo()`.
    static func isSwiftAllocationLayer(_ frame: ReportFrame, function: String) -> Bool {
        if let module = frame.moduleName, swiftStandardLibraryModules.contains(module) { return true }
        if function.hasPrefix("Swift.") || function.contains(".__allocating_init(") { return true }
        let copied = ["merged ", "specialized ", "generic specialization <", "partial apply for "]
        guard copied.contains(where: function.hasPrefix) else { return false }
        return function.contains(" of Swift.")
            || function.contains(" Swift.")
                && !function.contains(" of ")
    }

    /// True when `frame` is the tracer's or an allocation wrapper's.
    public static func isAllocatorFrame(_ frame: ReportFrame) -> Bool {
        if let module = frame.moduleName, module.hasPrefix("libmalloctrace") { return true }
        guard let function = frame.function else { return false }
        if names.contains(baseName(function)) { return true }
        if isSwiftAllocationLayer(frame, function: function) { return true }
        for layer in layers where function.hasPrefix(layer.prefix) {
            guard let member = layer.member else { return true }
            if function.contains(member) { return true }
        }
        return false
    }

    /// `xmalloc.part.0` → `xmalloc`; `foo() [clone .cold]` → `foo()`.
    static func baseName(_ function: String) -> String {
        var name = Substring(function)
        if let clone = name.range(of: " [clone ") { name = name[..<clone.lowerBound] }
        if !name.contains("("), !name.contains("::"), let dot = name.firstIndex(of: "."), dot != name.startIndex {
            name = name[..<dot]
        }
        return String(name)
    }

    /// `frames` without its leading allocator frames. A stack made only of allocator frames (cut short by
    /// the depth limit) is returned whole rather than emptied.
    public static func fold(_ frames: [ReportFrame]) -> [ReportFrame] {
        // A pool block's stack starts with its pool's frame: keep it, fold what follows.
        if let pool = frames.first, pool.isPoolFrame { return [pool] + fold(Array(frames.dropFirst())) }
        guard let first = frames.firstIndex(where: { !isAllocatorFrame($0) }) else { return frames }
        return Array(frames[first...])
    }
}
