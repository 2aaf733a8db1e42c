import ArgumentParser
import Foundation

/// `malloctrace ctl PID start|stop|mark NAME|snapshot NAME|status`: switches a running process that has the
/// library loaded with control on, through its control socket (docs/control.md).
struct CtlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Start, stop, mark or snapshot the tracing of a running process, without restarting it.",
        discussion: """
            The process must have the library loaded with control on: started with `malloctrace run --paused` \
            (loads idle: nothing is recorded until `ctl PID start`) or `run --control` (records from the start), \
            or with MALLOCTRACE_START=paused / MALLOCTRACE_CONTROL=1 in its environment. A thread of the library \
            serves requests on a Unix socket, DIR/PID.sock, where DIR is MALLOCTRACE_CONTROL_DIR or \
            /tmp/malloctrace-UID: a directory only its user may open, and every request's sender must be that \
            user (root too is refused for another user's process).

            Requests:
              start          record from now on (again)
              stop           record nothing from now on (frees of blocks recorded earlier still are)
              mark NAME      a named moment in the trace (report --from-mark / --to-mark)
              snapshot NAME  the live set at this moment, for `malloctrace diff TRACE@NAME ...`
              status         print whether it is recording or paused

            Examples:
              malloctrace run --paused -o /tmp/server.mtrace -- ./server &
              malloctrace ctl 4242 start
              malloctrace ctl 4242 mark "after warm-up"
              malloctrace ctl 4242 stop
            """
    )

    @Argument(help: ArgumentHelp("The process id of the traced program.", valueName: "pid"))
    var pid: Int32

    @Argument(help: ArgumentHelp("start, stop, mark, snapshot or status.", valueName: "request"))
    var request: String

    @Argument(help: ArgumentHelp("The name of a mark or snapshot.", valueName: "name"))
    var name: String?

    func validate() throws {
        guard pid > 0 else { throw ValidationError("the process id must be a positive number, not \(pid)") }
        switch request {
        case "start", "stop", "status":
            if name != nil { throw ValidationError("'\(request)' takes no name") }
        case "mark", "snapshot":
            guard let name, !name.isEmpty else {
                throw ValidationError("'\(request)' needs a name: ctl PID \(request) NAME")
            }
            guard name.utf8.count <= 255, !name.contains("\n") else {
                throw ValidationError("the name must be one line of at most 255 bytes")
            }
        default:
            throw ValidationError("unknown request '\(request)': use start, stop, mark NAME, snapshot NAME or status")
        }
    }

    func run() throws {
        let line = [request, name].compactMap { $0 }.joined(separator: " ")
        let reply = try ControlSocket.send(line, toProcess: pid)
        if reply.hasPrefix("ok") {
            try StandardOutput.write("\(pid): " + reply.dropFirst(reply.hasPrefix("ok: ") ? 4 : 2) + "\n")
            return
        }
        throw CommandFailure("process \(pid) " + (reply.hasPrefix("refused") ? reply : "answered: \(reply)"))
    }
}

/// The client side of the control socket.
enum ControlSocket {
    /// The control directory of processes running as `uid`, as the library names it.
    static func directory(forUser uid: uid_t) -> String {
        if let configured = ProcessInfo.processInfo.environment["MALLOCTRACE_CONTROL_DIR"], !configured.isEmpty {
            return configured
        }
        return "/tmp/malloctrace-\(uid)"
    }

    /// Sends one request line and returns the reply line.
    static func send(_ request: String, toProcess pid: pid_t) throws(CommandFailure) -> String {
        var status = stat()
        guard stat("/proc/\(pid)", &status) == 0 else { throw CommandFailure("there is no process \(pid)") }
        let path = directory(forUser: status.st_uid) + "/\(pid).sock"
        let ownerNote = status.st_uid == geteuid() ? "" : " (it runs as uid \(status.st_uid), you as uid \(geteuid()))"
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw CommandFailure("cannot make a socket: \(String(cString: strerror(errno)))") }
        defer { close(socket) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw CommandFailure("the control socket's path is too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected != 0 {
            let error = errno
            switch error {
            case ENOENT:
                throw CommandFailure(
                    "process \(pid) has no control socket (\(path)): it does not run with libmalloctrace.so, or"
                        + " control is off (start it with `malloctrace run --paused` or `--control`)\(ownerNote)")
            case EACCES, EPERM:
                throw CommandFailure(
                    "refused: process \(pid)'s control socket is private to its user\(ownerNote); run ctl as that user")
            case ECONNREFUSED:
                throw CommandFailure("process \(pid) no longer serves its control socket (it exited or exec'd)")
            default:
                throw CommandFailure("cannot reach process \(pid) at \(path): \(String(cString: strerror(error)))")
            }
        }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // MSG_NOSIGNAL: a process that refused the request may have closed the connection already (its reply
        // is read below); a failed send must not raise SIGPIPE here.
        let message = Array((request + "\n").utf8)
        _ = message.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !reply.contains(UInt8(ascii: "\n")) && reply.count < 4096 {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            reply += buffer[..<count]
        }
        guard let end = reply.firstIndex(of: UInt8(ascii: "\n")) else {
            throw CommandFailure("process \(pid) did not answer within 5 s\(ownerNote)")
        }
        return String(decoding: reply[..<end], as: UTF8.self)
    }
}
