import ArgumentParser
import Foundation
import MallocTraceFormat
import MallocTraceReports

/// `--profile-every`: a time span such as `60s`, `500ms`, `5m` or `1h` (a bare number is seconds).
struct ProfileInterval: ExpressibleByArgument, Equatable {
    /// Shorter intervals would spend more time reading the trace than the program runs between profiles.
    static let shortest: UInt64 = 100_000_000

    let nanoseconds: UInt64

    init?(argument: String) {
        let text = argument.lowercased()
        let number = text.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let units: [Substring: Double] = ["": 1e9, "s": 1e9, "ms": 1e6, "m": 60e9, "min": 60e9, "h": 3600e9]
        guard let value = Double(number), let unit = units[text.dropFirst(number.count)] else { return nil }
        let nanoseconds = (value * unit).rounded()
        guard nanoseconds >= Double(Self.shortest), nanoseconds < 1e18 else { return nil }
        self.nanoseconds = UInt64(nanoseconds)
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// Writes one pprof profile per interval into a directory while the traced program runs, and a last one
/// when it ends (see ``IntervalProfiler`` for what each holds and why it matches `report --to`).
///
/// Files are named `EXE.PID.SEQ.TIME.pb.gz` (SEQ from 000001, TIME the interval's end in UTC, e.g.
/// `server.4242.000003.20261203T144512Z.pb.gz`) and appear whole: each is written to a hidden temporary
/// file in the same directory (`.EXE...pb.gz.tmp`) and renamed, so a collector that picks up `*.pb.gz` never
/// reads half a profile.
struct PeriodicProfiles {
    let interval: UInt64
    let directory: String
    /// How far past an interval's end the process's clock must be before its profile is made: more than one
    /// tick of the coarse clock the events are stamped with (4 ms at HZ=250) plus the instant between an event's
    /// clock read and its publication, with a wide margin for a loaded machine.
    static let settle: UInt64 = 250_000_000
    /// How often the child is checked for having exited while waiting for the next interval.
    static let pollInterval: UInt64 = 50_000_000

    /// Makes the directory (with its parents) and checks that files can be created in it.
    static func prepare(directory: String) throws(CommandFailure) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CommandFailure("cannot create the profile directory \(directory): \(error.localizedDescription)")
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw CommandFailure(
                "cannot write profiles into \(directory): \(String(cString: strerror(errno)))")
        }
    }

    /// Waits for `pid` to end, writing a profile at the end of every interval of its trace meanwhile and a
    /// last one afterwards. `tracePath` finds the trace once the library has created it.
    func follow(pid: pid_t, tracePath: () -> String) -> ChildProcess.Termination {
        var profiler: IntervalProfiler?
        var path = ""
        var process: ProcessDetails?
        var next: UInt64 = 1
        while true {
            if let termination = ChildProcess.poll(pid) {
                // The trace is complete: the intervals that ended before the process did, then the rest.
                if profiler == nil {
                    path = tracePath()
                    profiler = IntervalProfiler(tracePath: path)
                    process = IntervalProfiler.process(ofTrace: path)
                }
                if let profiler, process != nil {
                    let end = (try? TraceReader(path: path))?.end?.time ?? 0
                    while next.multipliedReportingOverflow(by: interval).partialValue < end {
                        write(profiler, upTo: next * interval)
                        next += 1
                    }
                    write(profiler, upTo: nil)
                }
                return termination
            }
            if process == nil {
                path = tracePath()
                process = IntervalProfiler.process(ofTrace: path)
                if process != nil { profiler = IntervalProfiler(tracePath: path) }
            }
            guard let process, let profiler else {
                Self.sleep(nanoseconds: Self.pollInterval)
                continue
            }
            let (end, overflow) = next.multipliedReportingOverflow(by: interval)
            let due = process.startMonotonic &+ end &+ Self.settle
            let now = Self.monotonicNow()
            if !overflow && now >= due {
                write(profiler, upTo: end)
                next += 1
                continue
            }
            Self.sleep(nanoseconds: min(Self.pollInterval, due &- now))
        }
    }

    /// Makes and writes one profile; a failure is one line on stderr, never the end of the program.
    private func write(_ profiler: IntervalProfiler, upTo end: UInt64?) {
        do {
            let profile = try profiler.nextProfile(upTo: end)
            try store(profile)
        } catch let error as CommandFailure {
            StandardError.say(error.description)
        } catch {
            StandardError.say("cannot make a profile: \(error)")
        }
    }

    /// The file name a collector sees.
    static func fileName(for profile: IntervalProfile) -> String {
        let executable = profile.process.map { URL(fileURLWithPath: $0.executable).lastPathComponent } ?? "unknown"
        let safe = String(executable.map { $0.isLetter || $0.isNumber || "-_+".contains($0) ? $0 : "_" })
        let end = Date(timeIntervalSince1970: Double((profile.process?.startRealtime ?? 0) &+ profile.end) / 1e9)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let sequence = String(profile.number)
        let padded = String(repeating: "0", count: max(0, 6 - sequence.count)) + sequence
        return "\(safe).\(profile.process?.pid ?? 0).\(padded).\(formatter.string(from: end)).pb.gz"
    }

    /// Writes the profile under a hidden temporary name and renames it into place.
    private func store(_ profile: IntervalProfile) throws(CommandFailure) {
        let name = Self.fileName(for: profile)
        let final = directory + "/" + name
        let temporary = directory + "/." + name + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard descriptor >= 0 else {
            throw CommandFailure("cannot write the profile \(temporary): \(String(cString: strerror(errno)))")
        }
        let failure = DescriptorOutput.writeAll(profile.bytes, to: descriptor)
        close(descriptor)
        if let failure {
            unlink(temporary)
            throw CommandFailure("cannot write the profile \(temporary): \(String(cString: strerror(failure)))")
        }
        guard rename(temporary, final) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CommandFailure("cannot rename the profile to \(final): \(reason)")
        }
    }

    static func monotonicNow() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
