public import MallocTraceAnalysis
public import MallocTraceFormat
import MallocTraceSymbolication

/// What the HTML report shows beyond a ``Report``: the call tree of every stack and the heap over time,
/// all from the same single pass.
public struct HTMLReportModel {
    public var report: Report
    public var tree: CallTree
    public var timeline: HeapTimeline

    /// Frames below this share of the total (for every metric) are merged into `(other)`.
    public static let threshold = 0.001
    /// At most this many flame graph nodes and heap-over-time points, whatever the trace's size.
    public static let maximumNodes = 5000
    public static let maximumPoints = 600

    /// One pass over the trace feeds the report, the call tree and the heap-over-time series.
    public static func make(
        tracePath: String, options: ReportOptions, progress: ProgressMeter = .silent
    ) throws(TraceError) -> HTMLReportModel {
        let reader = try TraceReader(path: tracePath)
        let symbolizer = Symbolizer(backend: options.symbolizer)
        symbolizer.traceStart = reader.process?.startRealtime
        var timeline = HeapTimeline(maximumPoints: maximumPoints)
        let pass = TracePass.run(
            reader: reader, filters: options.filters, temporaryThreshold: options.temporaryThreshold,
            symbolizer: symbolizer, countsSizes: true, countsThreads: options.sections.contains(.threads),
            countedLeakKinds: options.leakKinds, analyzesAllocator: options.showsAllocator, progress: progress,
            observer: { timeline.consume($0) })
        try pass.checkMarks()
        let report = Report(pass: pass, options: options, symbolizer: symbolizer, progress: progress)
        let presenter = StackPresenter(
            resolver: FrameResolver(modules: reader.modules, symbolizer: symbolizer), stacks: reader.stacks,
            keepsAllocatorFrames: options.keepsAllocatorFrames)
        let profile = StackProfile(pass: pass, presenter: presenter, progress: progress)
        let tree = CallTree(profile: profile, threshold: threshold, maximumNodes: maximumNodes)
        progress.finish()
        return HTMLReportModel(report: report, tree: tree, timeline: timeline)
    }
}

/// Renders the HTML report: one self-contained file (inline CSS, SVG and script; no network) with the
/// summary, heap in use over time, the interactive flame graph with switchable metrics, the top tables
/// with their stacks, leak kinds and the size histogram.
public enum HTMLRenderer {
    public static func render(_ model: HTMLReportModel) throws -> String {
        let report = model.report
        let estimate = report.sampling == nil ? "" : "≈ "
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>malloctrace: \(escaped(commandLine(report)))</title>
            <style>\(css)</style></head>
            <body><main>
            <h1>malloctrace report</h1>
            <p class="command"><code>\(escaped(commandLine(report)))</code></p>
            <p class="meta">\(escaped(meta(report)))</p>

            """
        html += summary(report, estimate: estimate)
        html += timeline(model, estimate: estimate)
        if let view = report.allocator {
            html += AllocatorHTMLRenderer.panel(view, duration: report.durationNanoseconds)
        }
        html += flameGraph(model)
        for (section, title) in [
            (ReportSection.peak, "Live at the peak"), (.leaks, "Leaks"), (.allocations, "Most allocation calls"),
            (.bytes, "Most bytes allocated"), (.temporary, "Most temporary allocations"),
        ] {
            html += table(report, section: section, title: title, estimate: estimate)
        }
        if report.leakScan != nil { html += leakKinds(report) }
        if !report.histogram.isEmpty { html += histogram(report.histogram) }
        let data = try FlameGraphRenderer.embeddable(
            FlameGraphRenderer.data(model.tree, metrics: CallTreeMetric.allCases))
        html += """
            <footer>Written by malloctrace. This page is self-contained: it loads nothing from the network. To stay \
            fast on large traces, the heap series keeps at most \(HTMLReportModel.maximumPoints) points and the \
            flame graph merges frames below \(Formatting.decimal(HTMLReportModel.threshold * 100, places: 1))% of \
            every metric into "(other)" (at most \(HTMLReportModel.maximumNodes) frames).</footer>
            </main>
            <script>
            \(FlameGraphRenderer.script)
            var mtData = \(data);
            var flame = mtFlame(document.getElementById("fg-root"), mtData, {metric: "peak", width: 1200, prefix: "fg-"});
            document.querySelectorAll("button[data-metric]").forEach(function (b) {
              b.addEventListener("click", function () {
                document.querySelectorAll("button[data-metric]").forEach(function (o) { o.classList.remove("on"); });
                b.classList.add("on"); flame.setMetric(b.getAttribute("data-metric"));
              });
            });
            document.getElementById("fg-query").addEventListener("input", function (e) {
              try { flame.search(e.target.value); } catch (err) {}
            });
            document.body.setAttribute("data-ready", "yes");
            // Time from navigation start until the page is drawn: tools/bench/html.sh reads it.
            document.body.setAttribute("data-render-ms", String(Math.round(performance.now())));
            </script>
            </body></html>

            """
        return html
    }

    static func escaped(_ text: String) -> String { FlameGraphRenderer.escaped(text) }

    static func commandLine(_ report: Report) -> String {
        guard let process = report.process, !process.arguments.isEmpty else { return report.tracePath }
        return process.arguments.joined(separator: " ")
    }

    static func meta(_ report: Report) -> String {
        var parts = ["trace \(report.tracePath)"]
        if let pid = report.process?.pid { parts.append("pid \(pid)") }
        parts.append(report.endDescription)
        parts.append("ran \(Formatting.seconds(nanoseconds: report.durationNanoseconds))")
        if report.isTruncated { parts.append("truncated") }
        return parts.joined(separator: " · ")
    }

    static func card(_ title: String, _ value: String, _ detail: String, id: String) -> String {
        """
        <div class="card" id="\(id)"><div class="label">\(escaped(title))</div><div class="value">\(escaped(value))</div>\
        <div class="detail">\(escaped(detail))</div></div>

        """
    }

    static func summary(_ report: Report, estimate: String) -> String {
        let summary = report.summary
        var out = "<section><h2>Summary</h2><div class=\"cards\">\n"
        out += card(
            "Peak heap", estimate + Formatting.bytes(summary.peakBytes),
            "\(Formatting.counted(summary.peakBlocks, "block")) at \(Formatting.seconds(nanoseconds: summary.peakTime))",
            id: "peak")
        out += card(
            "Leaked", estimate + Formatting.bytes(summary.leakedBytes),
            "\(Formatting.counted(summary.leakedBlocks, "block")) from \(Formatting.counted(UInt64(report.leakSiteCount), "site"))",
            id: "leaked")
        out += card(
            "Allocated", estimate + Formatting.bytes(summary.bytesAllocated),
            "\(Formatting.counted(summary.allocationCalls, report.sampling == nil ? "call" : "sample"))",
            id: "allocated")
        out += card(
            "Freed", Formatting.grouped(summary.freeCalls),
            "free calls; \(Formatting.grouped(summary.failedCalls)) failed",
            id: "freed")
        if report.sampling == nil {
            out += card(
                "Temporary", Formatting.grouped(report.temporaryAllocations),
                "allocations, \(Formatting.bytes(report.temporaryBytes))", id: "temporary")
        }
        out += card("Threads", Formatting.grouped(UInt64(summary.threadCount)), "that used the heap", id: "threads")
        out += "</div>\n"
        if let sampling = report.sampling {
            out += """
                <p class="note">Sampled trace: one allocation per \(Formatting.bytes(sampling.rate)) allocated on \
                average (\(Formatting.counted(sampling.samples, "sample"))); bytes are estimates (≈), counts are samples.</p>

                """
        }
        return out + "</section>\n"
    }

    static func timeline(_ model: HTMLReportModel, estimate: String) -> String {
        let points = model.timeline.points
        let summary = model.report.summary
        let width = 1100.0, height = 240.0, left = 70.0, bottom = 24.0, top = 12.0
        // Kept as integers for the labels: a Double of a figure near 2^64 rounds up to 2^64, which no UInt64 holds.
        let endNanoseconds = max(
            model.report.durationNanoseconds, (points.last?.time ?? 0) +| model.timeline.bucketWidth, 1)
        let highestBytes = max(points.map(\.liveBytes).max() ?? 0, summary.peakBytes, 1)
        let end = Double(endNanoseconds), highest = Double(highestBytes)
        func x(_ time: UInt64) -> Double { left + (width - left - 10) * Double(time) / end }
        func y(_ bytes: UInt64) -> Double { top + (height - top - bottom) * (1 - Double(bytes) / highest) }
        func f(_ value: Double) -> String { Formatting.decimal(value, places: 1) }
        var path = "M\(f(x(0))),\(f(y(0)))"
        for point in points {
            path += " L\(f(x(point.time))),\(f(y(point.liveBytes)))"
            path += " L\(f(x(point.time +| model.timeline.bucketWidth))),\(f(y(point.liveBytes)))"
        }
        let peakX = x(summary.peakTime), peakY = y(summary.peakBytes)
        let label =
            "peak \(estimate)\(Formatting.bytes(summary.peakBytes)) at \(Formatting.seconds(nanoseconds: summary.peakTime))"
        let anchor = peakX > width * 0.7 ? "end" : "start"
        let bucket = Formatting.seconds(nanoseconds: model.timeline.bucketWidth)
        return """
            <section><h2>Heap in use over time</h2>
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(height))" width="\(Int(width))" height="\(Int(height))" \
            role="img" aria-label="heap in use over time">
            <line x1="\(f(left))" y1="\(f(y(0)))" x2="\(f(width - 10))" y2="\(f(y(0)))" class="axis"/>
            <line x1="\(f(left))" y1="\(f(top))" x2="\(f(left))" y2="\(f(y(0)))" class="axis"/>
            <text x="\(f(left - 6))" y="\(f(top + 10))" text-anchor="end">\(escaped(Formatting.bytes(highestBytes)))</text>
            <text x="\(f(left - 6))" y="\(f(y(0)))" text-anchor="end">0</text>
            <text x="\(f(left))" y="\(f(height - 6))">0 s</text>
            <text x="\(f(width - 10))" y="\(f(height - 6))" text-anchor="end">\(escaped(Formatting.seconds(nanoseconds: endNanoseconds)))</text>
            \(marks(model.report.marks, x: { x(min($0, endNanoseconds)) }, top: top, bottom: y(0), right: width - 10))
            <path d="\(path) L\(f(x(endNanoseconds))),\(f(y(points.last?.liveBytes ?? 0)))" class="series"/>
            <circle cx="\(f(peakX))" cy="\(f(peakY))" r="4" class="peak"/>
            <text x="\(f(anchor == "end" ? peakX - 8 : peakX + 8))" y="\(f(max(peakY + 4, top + 10)))" text-anchor="\(anchor)" \
            class="peak-label">\(escaped(label))</text>
            </svg>
            <p class="note">\(points.count) points; each is the most bytes live within its \(bucket).</p>
            </section>

            """
    }

    /// The control API on the timeline: a dashed line and label per mark and snapshot, the paused intervals
    /// shaded. Labels alternate between two rows so that close marks stay readable.
    static func marks(_ marks: [TraceMark], x: (UInt64) -> Double, top: Double, bottom: Double, right: Double)
        -> String
    {
        func f(_ value: Double) -> String { Formatting.decimal(value, places: 1) }
        var svg = ""
        var pausedAt: Double?
        for mark in marks where mark.kind == .pause || mark.kind == .resume {
            if mark.kind == .pause, pausedAt == nil { pausedAt = x(mark.time) }
            if mark.kind == .resume, let start = pausedAt {
                svg +=
                    "<rect x=\"\(f(start))\" y=\"\(f(top))\" width=\"\(f(max(1, x(mark.time) - start)))\" "
                    + "height=\"\(f(bottom - top))\" class=\"paused\"><title>paused</title></rect>\n"
                pausedAt = nil
            }
        }
        if let start = pausedAt {
            svg +=
                "<rect x=\"\(f(start))\" y=\"\(f(top))\" width=\"\(f(max(1, right - start)))\" "
                + "height=\"\(f(bottom - top))\" class=\"paused\"><title>paused to the end</title></rect>\n"
        }
        for (index, mark) in marks.filter({ $0.kind == .mark || $0.kind == .snapshot }).enumerated() {
            let position = x(mark.time)
            let what = mark.kind == .mark ? "mark" : "snapshot"
            let title = "\(what) \(mark.name) at \(Formatting.seconds(nanoseconds: mark.time))"
            svg +=
                "<g class=\"\(what)\"><title>\(escaped(title))</title>"
                + "<line x1=\"\(f(position))\" y1=\"\(f(top))\" x2=\"\(f(position))\" y2=\"\(f(bottom))\"/>"
                + "<text x=\"\(f(position + 3))\" y=\"\(f(top + 10 + Double(index % 2) * 12))\">"
                + "\(escaped(mark.name))</text></g>\n"
        }
        return svg
    }

    static func flameGraph(_ model: HTMLReportModel) -> String {
        let buttons = CallTreeMetric.allCases.map { metric in
            "<button data-metric=\"\(metric.rawValue)\"\(metric == .peak ? " class=\"on\"" : "")>\(metric.rawValue)</button>"
        }.joined(separator: " ")
        let merged =
            model.tree.mergedNodeCount > 0
            ? " \(Formatting.grouped(UInt64(model.tree.mergedNodeCount))) small frames are merged into (other)." : ""
        return """
            <section><h2>Flame graph</h2>
            <p class="controls">\(buttons) <input id="fg-query" placeholder="search (regular expression)" size="28"> \
            <button id="fg-reset">Reset zoom</button> <button id="fg-search">Search…</button> <span id="fg-matched"></span></p>
            <p class="note"><span id="fg-subtitle">\(CallTreeMetric.peak.title)</span>: the outermost frame is at the \
            bottom; click a frame to zoom, hover for bytes, blocks and percent.\(merged)</p>
            <svg id="fg-root" class="flame" width="100%" viewBox="0 0 1200 100" font-family="Verdana, sans-serif" \
            font-size="12"><style>\(FlameGraphRenderer.style)</style><g id="fg-frames"></g></svg>
            <p id="fg-details" class="details">&#160;</p>
            </section>

            """
    }

    static func table(_ report: Report, section: ReportSection, title: String, estimate: String) -> String {
        guard let sites = report.sites[section], !sites.isEmpty else { return "" }
        let countName =
            section == .allocations || section == .bytes ? "calls" : section == .temporary ? "temporary" : "blocks"
        var out = """
            <section><h2>\(escaped(title))</h2>
            <table class="sites" id="table-\(section.rawValue)"><thead><tr><th>#</th><th class="num">bytes</th>\
            <th class="num">\(countName)</th><th>where</th></tr></thead><tbody>

            """
        for (index, site) in sites.enumerated() {
            let frames = site.stack.map { "<li>\(escaped($0.displayName))</li>" }.joined()
            // Grouped by stack, the group's name is a number: its first shown frame says more.
            let name =
                report.options.grouping == .stack ? (site.stack.first?.displayName ?? site.group) : site.group
            let group = name + (site.stackCount > 1 ? " (\(site.stackCount) stacks)" : "")
            out += """
                <tr><td>\(index + 1)</td><td class="num" title="\(Formatting.grouped(site.bytes)) bytes">\
                \(estimate)\(escaped(Formatting.bytes(site.bytes)))</td><td class="num">\(Formatting.grouped(site.blocks))</td>\
                <td><details><summary>\(escaped(group))</summary><ol>\(frames)</ol></details></td></tr>

                """
        }
        return out + "</tbody></table></section>\n"
    }

    static func leakKinds(_ report: Report) -> String {
        var out = """
            <section><h2>Blocks live at exit, by leak kind</h2>
            <table class="sites" id="leak-kinds"><thead><tr><th>kind</th><th class="num">bytes</th>\
            <th class="num">blocks</th><th>counted as leaked</th></tr></thead><tbody>

            """
        var rows = LeakKind.allCases.reversed().map {
            ($0.description, report.leakKinds[$0], report.options.leakKinds.contains($0))
        }
        rows.append(("unclassified", report.leakKinds.unclassified, false))
        for (name, amount, counted) in rows {
            out += """
                <tr><td>\(escaped(name))</td><td class="num">\(escaped(Formatting.bytes(amount.bytes)))</td>\
                <td class="num">\(Formatting.grouped(amount.blocks))</td><td>\(counted ? "yes" : "no")</td></tr>

                """
        }
        return out + "</tbody></table></section>\n"
    }

    static func histogram(_ buckets: [SizeHistogram.Bucket]) -> String {
        let highest = max(buckets.map(\.allocationCalls).max() ?? 1, 1)
        var out = """
            <section><h2>Allocation sizes</h2>
            <table class="histogram" id="histogram"><thead><tr><th>size</th><th class="num">calls</th>\
            <th class="num">bytes</th><th></th></tr></thead><tbody>

            """
        for bucket in buckets where bucket.allocationCalls > 0 {
            let share = Formatting.decimal(Double(bucket.allocationCalls) * 100 / Double(highest), places: 1)
            out += """
                <tr><td>\(escaped(Formatting.bytes(bucket.minimumSize))) – \(escaped(Formatting.bytes(bucket.maximumSize)))</td>\
                <td class="num">\(Formatting.grouped(bucket.allocationCalls))</td><td class="num">\
                \(escaped(Formatting.bytes(bucket.bytes)))</td><td class="bar"><div style="width:\(share)%"></div></td></tr>

                """
        }
        return out + "</tbody></table></section>\n"
    }

    static let css = """
        body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2330; \
        background: #f4f5f7; margin: 0; } main { max-width: 1240px; margin: 0 auto; padding: 18px 24px 40px; } \
        h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 0 0 10px; } \
        section { background: #fff; border-radius: 8px; padding: 16px 18px; margin: 16px 0; \
        box-shadow: 0 1px 3px rgba(0,0,0,.08); } .command code { font-size: 15px; } .meta, .note, footer { color: #5a6272; } \
        .cards { display: flex; flex-wrap: wrap; gap: 12px; } .card { flex: 1 1 150px; border: 1px solid #e3e6ec; \
        border-radius: 6px; padding: 10px 12px; } .card .label { color: #5a6272; font-size: 12px; text-transform: uppercase; \
        letter-spacing: .04em; } .card .value { font-size: 22px; font-weight: 600; } .card .detail { color: #5a6272; } \
        .chart { width: 100%; height: auto; } .chart text { font-size: 11px; fill: #5a6272; } \
        .axis { stroke: #b8bec9; } .series { fill: none; stroke: #2a6fdb; stroke-width: 1.5; } \
        .peak { fill: #d6336c; } .peak-label { fill: #d6336c !important; font-weight: 600; } \
        .mark line, .snapshot line { stroke: #7048e8; stroke-dasharray: 4 3; } .mark text, .snapshot text \
        { fill: #7048e8 !important; } .snapshot line { stroke: #0c8599; } .snapshot text { fill: #0c8599 !important; } \
        .paused { fill: #adb5bd; opacity: .25; } \
        .flame { width: 100%; height: auto; background: #fafaf7; } .details { font-family: monospace; min-height: 1.4em; } \
        .controls button { border: 1px solid #c9ced8; background: #fff; border-radius: 4px; padding: 3px 9px; cursor: pointer; } \
        .controls button.on { background: #2a6fdb; color: #fff; border-color: #2a6fdb; } \
        table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 4px 8px; \
        border-bottom: 1px solid #eceef2; vertical-align: top; } .num { text-align: right; white-space: nowrap; } \
        details summary { cursor: pointer; font-family: monospace; } details ol { margin: 4px 0; font-family: monospace; \
        font-size: 12px; color: #394150; } .bar div { background: #2a6fdb; height: 10px; border-radius: 2px; } \
        .bar { width: 45%; } footer { font-size: 12px; margin-top: 18px; }
        """
}
