/// Renders a ``CallTree`` as an interactive flame graph: a standalone SVG, or the same widget inside the
/// HTML report. The page's script draws the frames from the tree's figures (so the HTML report can switch
/// metrics), zooms on click, searches with a regular expression and shows bytes, blocks and percent on
/// hover. No third-party code, no network.
public enum FlameGraphRenderer {
    /// The tree's figures for the script: parallel arrays indexed by node (parents before children).
    static func data(_ tree: CallTree, metrics: [CallTreeMetric]) -> JSON {
        let nodes = tree.nodes
        var values: [String: JSON] = [:]
        var blocks: [String: JSON] = [:]
        for metric in metrics {
            values[metric.rawValue] = .array(nodes.map { .unsigned(metric.value($0.total)) })
            blocks[metric.rawValue] = .array(nodes.map { .unsigned(metric.blocks($0.total)) })
        }
        return .object([
            "names": .array(nodes.map { .string($0.name) }),
            "children": .array(nodes.map { .array($0.children.map { .unsigned(UInt64($0)) }) }),
            "details": .array(
                nodes.map { node in
                    if node.mergedNodes > 0 { return .string("\(node.mergedNodes) smaller frames merged") }
                    guard let frame = node.frame else { return .string("") }
                    var parts: [String] = []
                    if let file = frame.file {
                        parts.append(
                            (file.split(separator: "/").last.map(String.init) ?? file)
                                + (frame.line.map { ":\($0)" } ?? ""))
                    }
                    if let module = frame.moduleName { parts.append(module) }
                    if frame.isInlined { parts.append("inlined") }
                    return .string(parts.joined(separator: ", "))
                }),
            "values": .object(values),
            "blocks": .object(blocks),
            "units": .object(
                Dictionary(
                    uniqueKeysWithValues: metrics.map { ($0.rawValue, JSON.string($0.isBytes ? "bytes" : "count")) })),
            "titles": .object(Dictionary(uniqueKeysWithValues: metrics.map { ($0.rawValue, JSON.string($0.title)) })),
        ])
    }

    /// Compact JSON that may sit inside `<script>` and CDATA: `<`, `>` and `&` are escaped.
    static func embeddable(_ value: JSON) throws -> String {
        let text = try value.compact()
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "<": out += "\\u003c"
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// XML text escaping.
    static func escaped(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A standalone SVG flame graph of `tree` weighed by `metric`.
    public static func svg(_ tree: CallTree, metric: CallTreeMetric, title: String, width: Int = 1200) throws -> String
    {
        let data = try embeddable(data(tree, metrics: [metric]))
        // Drawn here too, so that viewers without scripts (an image preview) show the graph; the script
        // redraws it interactively.
        let (frames, rows) = staticFrames(tree, metric: metric, width: Double(width))
        let height = rows * 17 + 80
        // A long command line would run over the buttons: about 9 pixels per character at 16 px.
        let fit = max(10, (width - 200) / 9)
        let title = title.count > fit ? String(title.prefix(fit - 1)) + "…" : title
        let note =
            tree.mergedNodeCount > 0
            ? " · \(Formatting.grouped(UInt64(tree.mergedNodeCount))) small frames merged into (other)" : ""
        return """
            <?xml version="1.0" standalone="no"?>
            <svg version="1.1" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
            xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" id="mt-root" \
            font-family="Verdana, sans-serif" font-size="12">
            <style>\(style)</style>
            <rect x="0" y="0" width="100%" height="100%" fill="#f8f8f4"/>
            <text x="\(width / 2)" y="22" text-anchor="middle" font-size="16">\(escaped(title))</text>
            <text id="mt-subtitle" x="\(width / 2)" y="40" text-anchor="middle" fill="#555">\(escaped(metric.title + note))</text>
            <text id="mt-reset" class="mt-button" x="10" y="22" visibility="hidden">Reset zoom</text>
            <text id="mt-search" class="mt-button" x="\(width - 10)" y="22" text-anchor="end">Search</text>
            <text id="mt-matched" x="\(width - 10)" y="40" text-anchor="end" fill="#555"></text>
            <g id="mt-frames" transform="translate(0,50)">\(frames)</g>
            <text id="mt-details" x="10" y="\(height - 10)" fill="#333"> </text>
            <script type="text/ecmascript"><![CDATA[
            \(script)
            var mtData = \(data);
            mtFlame(document.getElementById("mt-root"), mtData, {metric: "\(metric.rawValue)", width: \(width), standalone: true});
            ]]></script>
            </svg>

            """
    }

    /// The frames as the script first draws them (same layout, colors and titles), and the number of rows.
    static func staticFrames(_ tree: CallTree, metric: CallTreeMetric, width: Double) -> (String, Int) {
        let nodes = tree.nodes
        var depth = [Int](repeating: 0, count: nodes.count)
        var maxDepth = 0
        for index in nodes.indices {
            for child in nodes[index].children {
                depth[child] = depth[index] + 1
                maxDepth = max(maxDepth, depth[child])
            }
        }
        let total = metric.value(nodes[0].total)
        func describe(_ index: Int) -> String {
            let value = metric.value(nodes[index].total), blocks = metric.blocks(nodes[index].total)
            let percent = total > 0 ? Formatting.decimal(Double(value) * 100 / Double(total), places: 2) : "0.00"
            let amount =
                metric.isBytes
                ? "\(Formatting.bytes(value)) (\(Formatting.grouped(value)) bytes), \(Formatting.counted(blocks, "block"))"
                : "\(Formatting.grouped(value)) \(metric.title)"
            return "\(nodes[index].name) — \(amount), \(percent)%"
        }
        func color(_ name: String) -> String {
            if name == CallTree.otherName { return "rgb(190,190,190)" }
            var hash: UInt32 = 0
            for unit in name.utf16 { hash = hash &* 31 &+ UInt32(unit) }
            return "rgb(\(60 + hash % 70),\(170 + (hash >> 8) % 70),\(60 + (hash >> 16) % 60))"
        }
        var out = ""
        var pending: [(index: Int, x: Double, width: Double)] = [(0, 0, width)]
        while let (index, x, boxWidth) = pending.popLast() {
            let y = (maxDepth - depth[index]) * 17
            let name = nodes[index].name
            out +=
                "<g class=\"mt-frame\"><title>\(escaped(describe(index)))</title><rect x=\"\(Formatting.decimal(x, places: 2))\" "
            out += "y=\"\(y)\" width=\"\(Formatting.decimal(max(boxWidth - 0.5, 0.1), places: 2))\" height=\"16\" "
            out += "fill=\"\(color(name))\" rx=\"2\"/>"
            if boxWidth > 30 {
                let fit = Int(((boxWidth - 6) / 6.5).rounded(.down))
                let label = name.count <= fit ? name : String(name.prefix(max(fit - 2, 0))) + ".."
                out += "<text x=\"\(Formatting.decimal(x + 3, places: 2))\" y=\"\(y + 12)\">\(escaped(label))</text>"
            }
            out += "</g>\n"
            let value = metric.value(nodes[index].total)
            var childX = x
            for child in nodes[index].children {
                let childWidth = value > 0 ? boxWidth * Double(metric.value(nodes[child].total)) / Double(value) : 0
                if childWidth >= 0.5 { pending.append((child, childX, childWidth)) }
                childX += childWidth
            }
        }
        return (out, maxDepth + 1)
    }

    static let style = """
        .mt-frame rect { stroke: #fff; stroke-width: 0.5; } .mt-frame text { pointer-events: none; font-size: 11px; } \
        .mt-frame:hover rect { stroke: #000; stroke-width: 1; } .mt-frame { cursor: pointer; } \
        .mt-button { cursor: pointer; fill: #2a5db0; } .mt-faded rect { opacity: 0.5; }
        """

    /// The flame graph widget. `root` is an `<svg>` holding `#mt-frames`, `#mt-details`, `#mt-reset`,
    /// `#mt-search`, `#mt-matched` and `#mt-subtitle` (ids are prefixed by `opts.prefix` in the HTML page).
    static let script = #"""
        function mtBytes(v) {
          if (v < 1024) return v + " B";
          var units = ["KiB", "MiB", "GiB", "TiB", "PiB"], u = -1;
          do { v /= 1024; u++; } while (v >= 1024 && u < units.length - 1);
          return v.toFixed(1) + " " + units[u];
        }
        function mtGrouped(v) { return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
        function mtFlame(root, data, opts) {
          var NS = "http://www.w3.org/2000/svg", ROW = 17, W = opts.width || 1200, pre = opts.prefix || "mt-";
          var state = {metric: opts.metric, zoom: 0, query: null};
          var el = function (id) { return root.ownerDocument.getElementById(pre + id); };
          var frames = el("frames"), details = el("details");
          var n = data.names.length, depth = [0], maxDepth = 0, parent = [-1];
          for (var i = 0; i < n; i++) {
            var kids = data.children[i];
            for (var k = 0; k < kids.length; k++) {
              depth[kids[k]] = depth[i] + 1; parent[kids[k]] = i;
              if (depth[i] + 1 > maxDepth) maxDepth = depth[i] + 1;
            }
          }
          function color(name) {
            var h = 0;
            for (var c = 0; c < name.length; c++) h = (h * 31 + name.charCodeAt(c)) >>> 0;
            if (name === "(other)") return "rgb(190,190,190)";
            return "rgb(" + (60 + h % 70) + "," + (170 + (h >>> 8) % 70) + "," + (60 + (h >>> 16) % 60) + ")";
          }
          function describe(i) {
            var vals = data.values[state.metric], total = vals[0];
            var v = vals[i], b = data.blocks[state.metric][i], unit = data.units[state.metric];
            var pct = total > 0 ? (100 * v / total).toFixed(2) : "0.00";
            var amount = unit === "bytes"
              ? mtBytes(v) + " (" + mtGrouped(v) + " bytes), " + mtGrouped(b) + (b === 1 ? " block" : " blocks")
              : mtGrouped(v) + " " + data.titles[state.metric];
            return data.names[i] + " — " + amount + ", " + pct + "%" + (data.details[i] ? " — " + data.details[i] : "");
          }
          function matches(i) { return state.query !== null && state.query.test(data.names[i]); }
          function box(i, x, w, faded) {
            var g = root.ownerDocument.createElementNS(NS, "g");
            g.setAttribute("class", faded ? "mt-frame mt-faded" : "mt-frame");
            var y = (maxDepth - depth[i]) * ROW;
            var title = root.ownerDocument.createElementNS(NS, "title");
            title.textContent = describe(i);
            g.appendChild(title);
            var r = root.ownerDocument.createElementNS(NS, "rect");
            r.setAttribute("x", x.toFixed(2)); r.setAttribute("y", y);
            r.setAttribute("width", Math.max(w - 0.5, 0.1).toFixed(2)); r.setAttribute("height", ROW - 1);
            r.setAttribute("fill", matches(i) ? "rgb(230,0,230)" : color(data.names[i]));
            r.setAttribute("rx", 2);
            g.appendChild(r);
            if (w > 30) {
              var t = root.ownerDocument.createElementNS(NS, "text");
              t.setAttribute("x", (x + 3).toFixed(2)); t.setAttribute("y", y + ROW - 5);
              var name = data.names[i], fit = Math.floor((w - 6) / 6.5);
              t.textContent = name.length <= fit ? name : name.slice(0, Math.max(fit - 2, 0)) + "..";
              g.appendChild(t);
            }
            g.addEventListener("mouseover", function () { details.textContent = describe(i); });
            g.addEventListener("click", function () { state.zoom = i; draw(); });
            frames.appendChild(g);
          }
          function draw() {
            var vals = data.values[state.metric];
            while (frames.firstChild) frames.removeChild(frames.firstChild);
            var height = (maxDepth + 1) * ROW;
            if (opts.standalone) {
              root.setAttribute("height", height + 80);
              root.setAttribute("viewBox", "0 0 " + W + " " + (height + 80));
              details.setAttribute("y", height + 70);
            } else {
              root.setAttribute("height", height + 20);
              root.setAttribute("viewBox", "0 0 " + W + " " + (height + 20));
            }
            for (var a = parent[state.zoom]; a >= 0; a = parent[a]) box(a, 0, W, true);
            var matched = 0, stack = [[state.zoom, 0, W, false]], drawn = 0;
            while (stack.length > 0) {
              var item = stack.pop(), i = item[0], x = item[1], w = item[2], inMatch = item[3];
              box(i, x, w, false); drawn++;
              if (!inMatch && matches(i)) { matched += vals[i]; inMatch = true; }
              var kids = data.children[i], cx = x;
              for (var k = 0; k < kids.length; k++) {
                var cw = vals[i] > 0 ? w * vals[kids[k]] / vals[i] : 0;
                if (cw >= 0.5) stack.push([kids[k], cx, cw, inMatch]);
                cx += cw;
              }
            }
            el("reset").setAttribute("visibility", state.zoom === 0 ? "hidden" : "visible");
            var total = vals[0];
            el("matched").textContent = state.query === null ? ""
              : "Matched: " + (total > 0 ? (100 * Math.min(matched, total) / total).toFixed(1) : "0.0") + "%";
            root.setAttribute("data-drawn", drawn);
            root.setAttribute("data-total", total);
          }
          el("reset").addEventListener("click", function () { state.zoom = 0; draw(); });
          function search() {
            var term = root.ownerDocument.defaultView.prompt("Search frames (regular expression):", "");
            if (term === null) return;
            try { state.query = term === "" ? null : new RegExp(term); } catch (e) { state.query = null; }
            draw();
          }
          el("search").addEventListener("click", search);
          root.ownerDocument.addEventListener("keydown", function (e) {
            if ((e.ctrlKey || e.metaKey) && e.key === "f" && opts.standalone) { e.preventDefault(); search(); }
            if (e.key === "Escape") { state.query = null; state.zoom = 0; draw(); }
          });
          draw();
          return {
            setMetric: function (m) {
              state.metric = m; state.zoom = 0; draw();
              var sub = el("subtitle"); if (sub) sub.textContent = data.titles[m];
            },
            search: function (term) { state.query = term ? new RegExp(term) : null; draw(); }
          };
        }
        """#
}
