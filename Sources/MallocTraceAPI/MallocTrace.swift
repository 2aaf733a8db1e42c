internal import CMallocTraceAPI

/// malloctrace's control API for Swift programs: the calls of `malloctrace.h` (docs/api.md).
///
/// Each call finds its function in the preloaded `libmalloctrace.so` once and does nothing when the program
/// runs without malloctrace: a program built with these calls runs unchanged untraced. This module links
/// nothing of the tracer itself (no allocator function is defined in it).
public enum MallocTrace {
    /// Stops recording allocations until ``resume()`` (releases of blocks recorded earlier still are).
    public static func pause() { malloctrace_pause() }

    public static func resume() { malloctrace_resume() }

    /// True while paused (by ``pause()`` or from outside); false when not traced.
    public static var isPaused: Bool { malloctrace_is_paused() != 0 }

    /// Names this moment, for `malloctrace report --from-mark NAME --to-mark OTHER`.
    public static func mark(_ name: String) { malloctrace_mark(name) }

    /// Names the live set of this moment, for `malloctrace diff TRACE@NAME TRACE@OTHER`.
    public static func snapshot(_ name: String) { malloctrace_snapshot(name) }
}

/// An allocator malloctrace cannot see (an arena, a free list, memory from mmap): its blocks appear in
/// reports as `[pool NAME]` frames with the stacks of ``allocate(_:size:)``.
///
/// `@unchecked Sendable`: the handle is an opaque number the tracer hands out; every call is thread-safe.
public struct MallocTracePool: @unchecked Sendable {
    private let handle: OpaquePointer?

    /// Declares a pool (at most 256 bytes of its name are kept). Without malloctrace, a pool that does nothing.
    public init(name: String) { handle = malloctrace_pool_create(name) }

    /// `size` bytes at `pointer` were handed out by the pool.
    public func allocate(_ pointer: UnsafeRawPointer, size: Int) {
        malloctrace_pool_alloc(handle, pointer, size)
    }

    /// The block at `pointer` was given back.
    public func free(_ pointer: UnsafeRawPointer) { malloctrace_pool_free(handle, pointer) }

    /// The heap block at `block` (from malloc) is where the pool carves its blocks from: counted once.
    public func declareBacking(_ block: UnsafeRawPointer) { malloctrace_pool_backing(handle, block) }

    /// The pool is gone, with every block it still held.
    public func destroy() { malloctrace_pool_destroy(handle) }
}
