import MallocTraceCheck
import MallocTraceFormat
import MallocTraceReports

/// A frame with a function, optional source location and a module.
func frame(
    _ function: String?, file: String? = nil, line: Int? = nil, module: String? = "/usr/bin/app",
    offset: UInt64 = 0x1139, inlined: Bool = false
) -> ReportFrame {
    var frame = ReportFrame(address: 0x5555_0000_0000 + offset, module: module, offset: module == nil ? nil : offset)
    frame.function = function
    frame.file = file
    frame.line = line
    frame.isInlined = inlined
    return frame
}

/// A finding whose shown frames are its frames without the allocator ones.
func finding(
    _ kind: LeakKind, bytes: UInt64 = 48, blocks: UInt64 = 1, stackID: UInt32 = 1,
    allocation: AllocationFunction? = .malloc, _ frames: [ReportFrame]
) -> LeakFinding {
    LeakFinding(
        kind: kind, bytes: bytes, blocks: blocks, stackID: stackID, allocationFunction: allocation,
        frames: AllocatorFrames.fold(frames), allFrames: frames)
}

/// `main` calling `function` in the executable, with source locations.
func simpleFinding(_ function: String, kind: LeakKind = .definite, bytes: UInt64 = 48) -> LeakFinding {
    finding(
        kind, bytes: bytes,
        [frame(function, file: "/src/app/leak.c", line: 12), frame("main", file: "/src/app/leak.c", line: 30)])
}

/// A definite finding.
func finding(bytes: UInt64 = 48, allocation: AllocationFunction? = .malloc, _ frames: [ReportFrame]) -> LeakFinding {
    finding(.definite, bytes: bytes, allocation: allocation, frames)
}
