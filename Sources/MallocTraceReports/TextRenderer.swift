import MallocTraceAnalysis
import MallocTraceFormat

/// Renders a ``Report`` as the human-readable text of `malloctrace report`.
public enum TextRenderer {
    public static func render(_ report: Report) -> String {
        var out = ""
        let summary = report.summary
        out += "malloctrace report of \(report.tracePath)\n"
        if let process = report.process {
            let command = process.arguments.isEmpty ? process.executable : process.arguments.joined(separator: " ")
            out += "  command    \(command)\n"
            out +=
                "  process    pid \(process.pid), \(summary.threadCount) thread\(summary.threadCount == 1 ? "" : "s"), "
                + "ran \(Formatting.decimal(report.duration, places: 3)) s, \(report.endDescription)\n"
        } else {
            out += "  process    unknown (the process record is missing)\n"
        }
        for diagnostic in report.diagnostics { out += "  warning    \(diagnostic)\n" }
        out += "\n"
        let failed = summary.failedCalls > 0 ? " (\(Formatting.grouped(summary.failedCalls)) more failed)" : ""
        let rows: [(String, String)] = [
            ("allocation calls", Formatting.grouped(summary.allocationCalls) + failed),
            ("free calls", Formatting.grouped(summary.freeCalls)),
            ("bytes allocated", amount(summary.bytesAllocated)),
            (
                "peak heap",
                amount(summary.peakBytes) + " in \(Formatting.counted(summary.peakBlocks, "block")) at "
                    + Formatting.seconds(nanoseconds: summary.peakTime)
            ),
            ("leaked", amount(summary.leakedBytes) + " in \(Formatting.counted(summary.leakedBlocks, "block"))"),
        ]
        for (label, value) in rows { out += "  " + label.padding(18) + value + "\n" }
        if summary.unmatchedFrees > 0 {
            out +=
                "  " + "unmatched frees".padding(18) + Formatting.grouped(summary.unmatchedFrees)
                + " (blocks allocated before tracing started)\n"
        }
        out += section(
            title: "Leaks: blocks never freed, by call stack", sites: report.leaks, empty: "no leaks",
            describe: { "\(amount($0.bytes)) in \(Formatting.counted($0.blocks, "block"))" })
        out += section(
            title: "Peak contributors: live at the peak (\(Formatting.seconds(nanoseconds: summary.peakTime)))",
            sites: report.peakContributors, empty: "nothing was live",
            describe: {
                "\(amount($0.bytes)) in \(Formatting.counted($0.blocks, "block"))"
                    + " (\(percent($0.bytes, of: summary.peakBytes)) of the peak)"
            })
        return out
    }

    private static func amount(_ bytes: UInt64) -> String {
        bytes < 1024 ? "\(Formatting.grouped(bytes)) B" : "\(Formatting.bytes(bytes)) (\(Formatting.grouped(bytes)) B)"
    }

    private static func percent(_ part: UInt64, of whole: UInt64) -> String {
        whole == 0 ? "0%" : Formatting.decimal(Double(part) * 100 / Double(whole), places: 1) + "%"
    }

    private static func section(
        title: String, sites: [ReportSite], empty: String, describe: (ReportSite) -> String
    ) -> String {
        var out = "\n\(title)\n"
        if sites.isEmpty { return out + "  \(empty)\n" }
        for (rank, site) in sites.enumerated() {
            out += "  #\(rank + 1)  \(describe(site))\n"
            if site.stack.isEmpty { out += "        (no stack recorded)\n" }
            for frame in site.stack { out += "        \(frame.displayName)\n" }
        }
        return out
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
