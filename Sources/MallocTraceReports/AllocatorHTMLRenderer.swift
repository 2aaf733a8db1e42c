import MallocTraceAnalysis
import MallocTraceFormat

/// The allocator panel of the HTML report (`report --format html --allocator`): the resident set, program break,
/// live chunks and the program's own mappings over time, and the tables of the text view.
enum AllocatorHTMLRenderer {
    static func escaped(_ text: String) -> String { HTMLRenderer.escaped(text) }
    static func bytes(_ value: UInt64) -> String { escaped(TextRenderer.compact(value)) }

    static func panel(_ view: AllocatorReport, duration: UInt64) -> String {
        var out = "<section id=\"allocator\"><h2>The allocator's view</h2>\n"
        out += "<p class=\"note\">\(escaped(AllocatorTextRenderer.headline(view.details))). How to read this panel: "
        out += "docs/how-malloc-works.md.</p>\n"
        out += chart(view, duration: duration)
        if view.hasUsableSizes {
            let total = view.sources.total
            out += "<table id=\"allocator-sources\"><thead><tr><th>served from</th><th class=\"num\">calls</th>"
            out += "<th class=\"num\">requested</th><th class=\"num\">usable</th><th class=\"num\">in chunks</th>"
            out += "</tr></thead><tbody>\n"
            for (name, tally) in [
                ("main arena (brk)", view.sources.mainArena), ("thread arenas", view.sources.threadArenas),
                ("mmap (own pages)", view.sources.mmapped), ("all", total),
            ] {
                out += "<tr><td>\(name)</td><td class=\"num\">\(Formatting.grouped(tally.calls))</td>"
                out +=
                    "<td class=\"num\">\(bytes(tally.requestedBytes))</td><td class=\"num\">\(bytes(tally.usableBytes))</td>"
                out += "<td class=\"num\">\(bytes(tally.chunkBytes))</td></tr>\n"
            }
            out += "</tbody></table>\n"
            if let threshold = view.threshold {
                out += "<p class=\"note\">" + escaped(AllocatorTextRenderer.thresholdLines(threshold)) + "</p>\n"
            }
        }
        for gap in view.gaps {
            out += "<h3>RSS against the live heap at \(escaped(gap.moment)) "
            out += "(\(escaped(Formatting.seconds(nanoseconds: gap.time))))</h3>\n"
            out += "<table class=\"allocator-gap\"><tbody><tr><td>resident set</td><td class=\"num\">"
            out += "\(bytes(gap.residentBytes))</td></tr><tr><td>live heap (requested)</td><td class=\"num\">"
            out += "\(bytes(gap.liveRequestedBytes))</td></tr>\n"
            for (part, amount) in gap.parts {
                out += "<tr><td>\(escaped(AllocatorTextRenderer.describe(part)))</td>"
                out += "<td class=\"num\">\(bytes(amount))</td></tr>\n"
                guard part == .directMappings else { continue }
                for (cause, mapped) in gap.mappingCauses.prefix(5) {
                    out +=
                        "<tr><td>&nbsp;&nbsp;\(escaped(cause))</td><td class=\"num\">\(bytes(mapped)) mapped</td></tr>\n"
                }
            }
            out += "</tbody></table>\n"
        }
        if !view.candidates.isEmpty {
            out += "<h3>Requests just above a boundary (cheap wins)</h3>"
            out += preformatted(AllocatorTextRenderer.candidates(view, top: view.candidates.count))
        }
        if view.mappings != nil {
            out += "<h3>The program's own mappings</h3>"
            out += preformatted(AllocatorTextRenderer.mappings(view, top: view.mappingCauses.count))
        }
        return out + "</section>\n"
    }

    /// A text section without its title (the panel has its own heading), wrapped to the page.
    static func preformatted(_ section: String) -> String {
        let body = section.split(separator: "\n", omittingEmptySubsequences: false).drop { $0.isEmpty }.dropFirst()
        return "<pre style=\"white-space: pre-wrap\">" + escaped(body.joined(separator: "\n")) + "</pre>\n"
    }

    /// RSS, program break, live chunks and own mappings on one time axis.
    static func chart(_ view: AllocatorReport, duration: UInt64) -> String {
        let points = view.timeline
        guard !points.isEmpty else { return "" }
        let width = 1100.0, height = 240.0, left = 70.0, bottom = 24.0, top = 12.0
        // Kept as integers for the labels: a Double of a figure near 2^64 rounds up to 2^64, which no UInt64 holds.
        let endNanoseconds = max(duration, points.last?.time ?? 0, 1)
        let end = Double(endNanoseconds)
        let series: [(name: String, color: String, value: (AllocatorReport.Point) -> UInt64?)] = [
            ("RSS", "#d6336c", { $0.residentBytes }), ("brk heap", "#f08c00", { $0.breakBytes }),
            ("live chunks", "#2a6fdb", { $0.liveChunkBytes }), ("own mappings", "#2b8a3e", { $0.mappedBytes }),
        ]
        let highestBytes = max(points.flatMap { point in series.compactMap { $0.value(point) } }.max() ?? 0, 1)
        let highest = Double(highestBytes)
        func x(_ time: UInt64) -> Double { left + (width - left - 10) * Double(time) / end }
        func y(_ bytes: UInt64) -> Double { top + (height - top - bottom) * (1 - Double(bytes) / highest) }
        func f(_ value: Double) -> String { Formatting.decimal(value, places: 1) }
        var out = """
            <svg class="chart" id="allocator-chart" viewBox="0 0 \(Int(width)) \(Int(height))" width="\(Int(width))" \
            height="\(Int(height))" role="img" aria-label="resident set against the heap over time">
            <line x1="\(f(left))" y1="\(f(y(0)))" x2="\(f(width - 10))" y2="\(f(y(0)))" class="axis"/>
            <line x1="\(f(left))" y1="\(f(top))" x2="\(f(left))" y2="\(f(y(0)))" class="axis"/>
            <text x="\(f(left - 6))" y="\(f(top + 10))" text-anchor="end">\(bytes(highestBytes))</text>
            <text x="\(f(left - 6))" y="\(f(y(0)))" text-anchor="end">0</text>
            <text x="\(f(width - 10))" y="\(f(height - 6))" text-anchor="end">\(escaped(Formatting.seconds(nanoseconds: endNanoseconds)))</text>

            """
        for (index, line) in series.enumerated() {
            let values = points.compactMap { point in line.value(point).map { (point.time, $0) } }
            guard !values.isEmpty else { continue }
            let path = values.enumerated().map {
                "\($0.offset == 0 ? "M" : "L")\(f(x($0.element.0))),\(f(y($0.element.1)))"
            }
            out +=
                "<path d=\"\(path.joined(separator: " "))\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.5\"/>\n"
            out +=
                "<text x=\"\(f(left + 10 + Double(index) * 120))\" y=\"\(f(top + 10))\" style=\"fill:\(line.color)\">"
            out += "\(line.name)</text>\n"
        }
        return out + "</svg>\n"
    }
}
