import Foundation

/// Runs the target with an extra environment and waits for it, passing stdin, stdout and stderr through.
enum ChildProcess {
    enum Termination {
        case exited(Int32)
        case signaled(Int32)

        /// The status a shell would report: the exit code, or 128 + the signal number.
        var shellStatus: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }
    }

    /// Starts `arguments[0]` (already resolved to `path`) and returns its pid.
    static func spawn(path: String, arguments: [String], environment: [String]) throws(CommandFailure) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // This process ignores SIGINT/SIGQUIT while it waits (as shells and `time` do); the child must not.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGQUIT)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // The signal mask is this thread's, which is the one this process was started with: the child gets what
        // it would get untraced (a caller that blocks signals for its children keeps them blocked).
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, nil, &attributes, argv, envp)
        guard result == 0 else {
            throw CommandFailure("cannot start \(path): \(String(cString: strerror(result)))")
        }
        return pid
    }

    static func wait(for pid: pid_t) -> Termination {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return .exited(127) }
        }
        return termination(status)
    }

    /// The child's termination if it has ended, without waiting; nil while it runs.
    static func poll(_ pid: pid_t) -> Termination? {
        var status: Int32 = 0
        var result = waitpid(pid, &status, WNOHANG)
        while result < 0 && errno == EINTR { result = waitpid(pid, &status, WNOHANG) }
        if result < 0 { return .exited(127) }
        return result == 0 ? nil : termination(status)
    }

    private static func termination(_ status: Int32) -> Termination {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    /// Ignores terminal interrupts in this process so that it outlives the child and reports its trace.
    static func ignoreInterrupts() {
        signal(SIGINT, SIG_IGN)
        signal(SIGQUIT, SIG_IGN)
    }
}
