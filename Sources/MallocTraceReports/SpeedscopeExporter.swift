/// Writes a ``StackProfile`` in speedscope's file format (https://www.speedscope.app/file-format-schema.json):
/// one `sampled` profile per metric, each stack one sample (frame indices outermost first) weighed by
/// the metric.
public enum SpeedscopeExporter {
    public static let schema = "https://www.speedscope.app/file-format-schema.json"

    public static func render(_ profile: StackProfile, name: String, exporter: String) throws -> String {
        var frames: [JSON] = []
        var frameIndex: [String: Int] = [:]
        func index(_ frame: ReportFrame) -> Int {
            let name = CallTree.name(of: frame) + (frame.isInlined ? " [inlined]" : "")
            let key = name + "\u{0}" + (frame.moduleName ?? "")
            if let existing = frameIndex[key] { return existing }
            var fields: [String: JSON] = ["name": .string(name)]
            if let file = frame.file {
                fields["file"] = .string(file)
                if let line = frame.line { fields["line"] = .unsigned(UInt64(max(0, line))) }
            } else if let module = frame.module {
                fields["file"] = .string(module)
            }
            frames.append(.object(fields))
            frameIndex[key] = frames.count - 1
            return frames.count - 1
        }
        var noStack: Int?
        let stacks: [[Int]] = profile.stacks.map { stack in
            if stack.frames.isEmpty {
                if noStack == nil {
                    frames.append(.object(["name": .string("(no stack recorded)")]))
                    noStack = frames.count - 1
                }
                return [noStack ?? 0]
            }
            return stack.frames.map(index)
        }
        var profiles: [JSON] = []
        for metric in CallTreeMetric.allCases {
            var samples: [JSON] = []
            var weights: [JSON] = []
            var total: UInt64 = 0
            for (stack, frames) in zip(profile.stacks, stacks) {
                let value = metric.value(stack.figures)
                guard value > 0 else { continue }
                samples.append(.array(frames.map { .unsigned(UInt64($0)) }))
                weights.append(.unsigned(value))
                total &+= value
            }
            profiles.append(
                .object([
                    "type": .string("sampled"),
                    "name": .string("\(name): \(metric.title)"),
                    "unit": .string(metric.isBytes ? "bytes" : "none"),
                    "startValue": .unsigned(0),
                    "endValue": .unsigned(total),
                    "samples": .array(samples),
                    "weights": .array(weights),
                ]))
        }
        let document: JSON = .object([
            "$schema": .string(schema),
            "shared": .object(["frames": .array(frames)]),
            "profiles": .array(profiles),
            "name": .string(name),
            "activeProfileIndex": .unsigned(0),
            "exporter": .string(exporter),
        ])
        return try document.compact() + "\n"
    }
}
