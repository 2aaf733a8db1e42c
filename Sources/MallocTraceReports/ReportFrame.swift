import MallocTraceFormat

/// One frame of a call stack as reports show it: where the return address lies (module and offset) and,
/// when symbolization found them, the function, file and line. A return address inside inlined code
/// gives several frames with the same address: the inlined calls (``isInlined``) and then their caller.
public struct ReportFrame: Sendable, Equatable, Hashable {
    /// The runtime return address recorded in the trace.
    public var address: UInt64
    /// Path of the module containing the address, if known.
    public var module: String?
    /// Address relative to the module's load bias (what symbolizers take, after subtracting one).
    public var offset: UInt64?
    public var function: String?
    public var file: String?
    public var line: Int?
    /// True for a call inlined into the next frame.
    public var isInlined = false
    /// Why the frame has no file and line (or no function), when it has none.
    public var problem: String?
    /// The stand-in frame that names a pool block's pool (``function`` is `[pool NAME]`).
    public var isPoolFrame = false

    public init(address: UInt64, module: String?, offset: UInt64?) {
        self.address = address
        self.module = module
        self.offset = offset
    }

    /// The module's file name (`libc.so.6`), if known.
    public var moduleName: String? {
        module.map { path in path.split(separator: "/").last.map(String.init) ?? path }
    }

    /// `module+0xoffset`, or the bare address when no module contains it.
    public var location: String {
        guard let moduleName, let offset else { return "0x\(String(address, radix: 16))" }
        return "\(moduleName)+0x\(String(offset, radix: 16))"
    }

    /// `function (file.c:12, module)` with debug information, `function (module+0xoffset)` with a name only,
    /// else the location alone. Inlined calls end in ` [inlined]`.
    public var displayName: String { undecoratedDisplayName.escapingControlCharacters }

    private var undecoratedDisplayName: String {
        guard let function else { return location }
        if isPoolFrame { return function }
        let text: String
        if let file {
            let fileName = file.split(separator: "/").last.map(String.init) ?? file
            let place = fileName + (line.map { ":\($0)" } ?? "")
            text = "\(function) (\(place)\(moduleName.map { ", \($0)" } ?? ""))"
        } else {
            text = "\(function) (\(location))"
        }
        return isInlined ? text + " [inlined]" : text
    }

    /// What identifies the frame across traces and builds: the function (else the module and offset),
    /// without addresses or line numbers, which move when code changes.
    public var matchKey: String {
        guard let function else { return location }
        return (isInlined ? "inlined " : "") + function + " @" + (moduleName ?? "?")
    }
}
