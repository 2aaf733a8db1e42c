import Foundation

/// A one-line progress display for long reports: silent for the first `delay` seconds (short reports never
/// show it), then redrawn at most ten times a second, and erased when the work is done. The CLI enables
/// it only when standard error is a terminal.
public final class ProgressMeter {
    private let isEnabled: Bool
    private let delay: Double
    private let write: (String) -> Void
    private let start: Double
    private var lastDraw: Double = 0
    private var drawn = false

    public init(enabled: Bool, delay: Double = 1.0, write: @escaping (String) -> Void) {
        self.isEnabled = enabled
        self.delay = delay
        self.write = write
        self.start = Self.now()
    }

    /// A meter that never shows anything.
    public static var silent: ProgressMeter { ProgressMeter(enabled: false) { _ in } }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Reports `done` of `total` units of `phase` ("reading 12.3 M events (45%)"). Cheap when called often.
    public func update(_ phase: String, done: UInt64, total: UInt64?, unit: String) {
        guard isEnabled else { return }
        let now = Self.now()
        guard now - start >= delay, now - lastDraw >= 0.1 else { return }
        lastDraw = now
        var line = "malloctrace: \(phase) \(Self.count(done)) \(unit)"
        if let total, total > 0 {
            // A crafted trace can claim any total: compute the share in floating point, never overflowing.
            let share = Int(min(100, (Double(done) / Double(total) * 100).rounded(.down)))
            line += " of \(Self.count(total)) (\(share)%)"
        }
        write("\r\u{1B}[K" + line)
        drawn = true
    }

    /// Erases the line if one was drawn.
    public func finish() {
        guard drawn else { return }
        write("\r\u{1B}[K")
        drawn = false
    }

    private static func count(_ value: UInt64) -> String {
        value >= 1_000_000 ? Formatting.decimal(Double(value) / 1e6, places: 1) + " M" : Formatting.grouped(value)
    }
}
