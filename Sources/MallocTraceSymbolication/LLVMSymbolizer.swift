import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One source-level frame at an address: the function and, from debug information, file and line.
public struct SourceFrame: Sendable, Equatable, Hashable {
    /// The function's name as a programmer writes it (demangled).
    public var function: String?
    public var file: String?
    public var line: Int?
    /// True when this frame is a call inlined into the frame after it.
    public var isInlined: Bool

    public init(function: String?, file: String? = nil, line: Int? = nil, isInlined: Bool = false) {
        self.function = function
        self.file = file
        self.line = line
        self.isInlined = isInlined
    }
}

/// One long-lived `llvm-symbolizer --output-style=JSON --inlines` process, fed `"MODULE" 0xOFFSET` lines
/// on its standard input and answering one JSON line per request. Requests are pipelined in windows
/// small enough that neither side can block the other.
///
/// Standard input is one end of a socket pair, so a symbolizer that died makes `send` fail with EPIPE
/// instead of raising SIGPIPE in this process.
final class LLVMSymbolizer {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let path: String
    private var pid: pid_t = 0
    private var input: Int32 = -1
    private var output: Int32 = -1
    private var buffer: [UInt8] = []
    private var bufferStart = 0
    private(set) var isRunning = false
    /// Seconds to wait for one answer before giving up on the process.
    var answerTimeout: Double = 60

    init(path: String) throws(Failure) {
        self.path = path
        var sockets: [Int32] = [-1, -1]
        var pipeEnds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sockets) == 0 else {
            throw Failure(description: "socketpair: \(String(cString: strerror(errno)))")
        }
        guard pipe(&pipeEnds) == 0 else {
            close(sockets[0])
            close(sockets[1])
            throw Failure(description: "pipe: \(String(cString: strerror(errno)))")
        }
        for descriptor in pipeEnds { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, sockets[1], 0)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let arguments = [path, "--output-style=JSON", "--inlines", "--no-demangle", "--functions=linkage"]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let result = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(sockets[1])
        close(pipeEnds[1])
        guard result == 0 else {
            close(sockets[0])
            close(pipeEnds[0])
            throw Failure(description: "cannot start \(path): \(String(cString: strerror(result)))")
        }
        input = sockets[0]
        output = pipeEnds[0]
        isRunning = true
    }

    deinit { stop() }

    /// Closes its input and reaps the process.
    func stop() {
        guard pid != 0 else { return }
        if input >= 0 { close(input) }
        if output >= 0 { close(output) }
        input = -1
        output = -1
        if isRunning { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        pid = 0
        isRunning = false
    }

    /// The quoted request line for one address, or nil when the path cannot be expressed in one.
    static func request(module: String, address: UInt64) -> String? {
        guard !module.contains("\""), !module.contains("\n"), !module.contains("\r") else { return nil }
        return "\"\(module)\" 0x\(String(address, radix: 16))\n"
    }

    /// Symbolizes `requests` (module path, file address) in order. The result has one entry per request:
    /// the frames innermost first (empty when nothing is known) or an error message from the symbolizer.
    /// Throws when the process dies or stops answering; answers given before that are passed to `partial`.
    func symbolize(
        _ requests: [(module: String, address: UInt64)], partial: (Int, Result<[SourceFrame], Failure>) -> Void
    ) throws(Failure) {
        guard isRunning else { throw Failure(description: "\(path) is not running") }
        var next = 0
        while next < requests.count {
            var window = ""
            var end = next
            while end < requests.count && window.utf8.count < 16 * 1024 {
                window += Self.request(module: requests[end].module, address: requests[end].address) ?? "\"\" 0x0\n"
                end += 1
            }
            try send(window)
            for index in next..<end {
                let line = try readLine()
                partial(index, Self.parse(line))
            }
            next = end
        }
    }

    private func send(_ text: String) throws(Failure) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.send(input, base + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                isRunning = false
                throw Failure(description: "\(path) stopped reading requests (\(reason))")
            }
            sent += count
        }
    }

    private func readLine() throws(Failure) -> [UInt8] {
        while true {
            if let newline = buffer[bufferStart...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[bufferStart..<newline])
                bufferStart = newline + 1
                if bufferStart > 1 << 16 {
                    buffer.removeFirst(bufferStart)
                    bufferStart = 0
                }
                return line
            }
            var descriptor = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(answerTimeout * 1000))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else {
                isRunning = false
                throw Failure(description: "\(path) gave no answer for \(Int(answerTimeout)) s")
            }
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            let count = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                isRunning = false
                throw Failure(description: "\(path) exited while symbolizing")
            }
            buffer.append(contentsOf: chunk[..<count])
        }
    }

    /// Decodes one answer: `{"Address":…,"ModuleName":…,"Symbol":[{"FunctionName":…,"FileName":…,"Line":…},…]}`
    /// or `{…,"Error":{"Message":…}}`. Unknown names (`""`, `"??"`) and line 0 become nil.
    static func parse(_ line: [UInt8]) -> Result<[SourceFrame], Failure> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            return .failure(
                Failure(description: "unreadable answer: \(String(decoding: line.prefix(200), as: UTF8.self))"))
        }
        if let error = object["Error"] as? [String: Any] {
            return .failure(Failure(description: (error["Message"] as? String) ?? "unknown error"))
        }
        let symbols = object["Symbol"] as? [[String: Any]] ?? []
        var frames: [SourceFrame] = []
        for (index, symbol) in symbols.enumerated() {
            func text(_ key: String) -> String? {
                guard let value = symbol[key] as? String, !value.isEmpty, value != "??" else { return nil }
                return value
            }
            let line = (symbol["Line"] as? NSNumber)?.intValue ?? 0
            let file = text("FileName")
            frames.append(
                SourceFrame(
                    function: text("FunctionName").map(Demangler.demangle), file: file,
                    line: file != nil && line > 0 ? line : nil, isInlined: index < symbols.count - 1))
        }
        if frames.allSatisfy({ $0.function == nil && $0.file == nil }) { frames = [] }
        return .success(frames)
    }
}
