import MallocTraceFormat
import MallocTraceReports

/// `--sarif FILE`: a SARIF 2.1.0 log with one run. Each finding is a result (rule `leak/<kind>`) located
/// at its first shown frame with a source file, with the allocation stack in `stacks[0].frames`; each
/// limit violation is a result of rule `limit/<name>` without a location (GitHub code scanning keeps only
/// results with a location). Paths under `sourceRoot` become relative URIs against `SRCROOT`.
public enum SARIFRenderer {
    public static let schemaURI = "https://json.schemastore.org/sarif-2.1.0.json"
    public static let informationURI = "https://github.com/malloctrace/malloctrace"

    /// The rules of the driver: id and short description.
    public static let rules: [(id: String, description: String)] = [
        ("leak/definite", "Memory leak: no pointer to the block remained when the process ended"),
        ("leak/indirect", "Indirect leak: the block was reachable only from leaked blocks"),
        ("leak/possible", "Possible leak: only pointers into the block's interior remained"),
        ("leak/reachable", "Block still reachable when the process ended"),
        ("limit/max-leaked", "Leaked bytes over --max-leaked"),
        ("limit/max-peak", "Peak heap over --max-peak"),
        ("limit/max-allocations", "Allocation calls over --max-allocations"),
        ("limit/fail-on-increase", "A figure grew over the baseline by more than --fail-on-increase"),
    ]

    public static func render(_ verdict: CheckVerdict, sourceRoot: String? = nil) -> String {
        var results: [JSON] = []
        for process in verdict.processes {
            let label = CheckText.processLabel(process)
            for finding in process.findings {
                var result: [String: JSON] = [
                    "ruleId": .string(CheckText.ruleID(finding.kind)),
                    "ruleIndex": .unsigned(ruleIndex(CheckText.ruleID(finding.kind))),
                    "level": .string("error"),
                    "message": text("\(CheckText.head(finding)) in \(label)"),
                    "partialFingerprints": .object([
                        "mallocTraceStack/v1": .string(fingerprint(Baseline.stackKey(finding.frames)))
                    ]),
                    "stacks": .array([
                        .object([
                            "message": text("allocation stack"),
                            "frames": .array(finding.frames.map { stackFrame($0, sourceRoot: sourceRoot) }),
                        ])
                    ]),
                ]
                if let frame = CheckText.sourceFrame(finding), let location = location(frame, sourceRoot: sourceRoot) {
                    result["locations"] = .array([location])
                }
                results.append(.object(result))
            }
            for violation in process.violations {
                let id = CheckText.ruleID(violation.limit)
                let grown = CheckText.grownSites(violation.grownSites, indent: "  ")
                results.append(
                    .object([
                        "ruleId": .string(id), "ruleIndex": .unsigned(ruleIndex(id)), "level": .string("error"),
                        "message": text(([violation.message + " in " + label] + grown).joined(separator: "\n")),
                    ]))
            }
        }
        var run: [String: JSON] = [
            "tool": .object([
                "driver": .object([
                    "name": .string("malloctrace"),
                    "informationUri": .string(informationURI),
                    "rules": .array(
                        rules.map { rule in
                            .object(["id": .string(rule.id), "shortDescription": text(rule.description)])
                        }),
                ])
            ]),
            "results": .array(results),
        ]
        if let root = sourceRoot, !root.isEmpty {
            run["originalUriBaseIds"] = .object(["SRCROOT": .object(["uri": .string(fileURI(directory(root)))])])
        }
        return JSON.object([
            "$schema": .string(schemaURI), "version": .string("2.1.0"), "runs": .array([.object(run)]),
        ]).renderedOrEmpty()
    }

    static func text(_ value: String) -> JSON { .object(["text": .string(value)]) }

    static func ruleIndex(_ id: String) -> UInt64 { UInt64(rules.firstIndex { $0.id == id } ?? 0) }

    /// A physical location, when the frame has a file; `region` only with a line (SARIF lines start at 1).
    static func location(_ frame: ReportFrame, sourceRoot: String?) -> JSON? {
        guard let file = frame.file else { return nil }
        let relative = CheckText.relativePath(file, to: sourceRoot)
        var artifact: [String: JSON]
        if relative != file {
            artifact = ["uri": .string(percentEncoded(relative)), "uriBaseId": .string("SRCROOT")]
        } else if file.hasPrefix("/") {
            artifact = ["uri": .string(fileURI(file))]
        } else {
            artifact = ["uri": .string(percentEncoded(file))]
        }
        var physical: [String: JSON] = ["artifactLocation": .object(artifact)]
        if let line = frame.line, line >= 1 { physical["region"] = .object(["startLine": .unsigned(UInt64(line))]) }
        return .object(["physicalLocation": .object(physical)])
    }

    static func stackFrame(_ frame: ReportFrame, sourceRoot: String?) -> JSON {
        var location: [String: JSON] = ["message": text(frame.displayName)]
        if case .object(let physical)? = self.location(frame, sourceRoot: sourceRoot) {
            location.merge(physical) { $1 }
        }
        if let function = frame.function {
            location["logicalLocations"] = .array([.object(["fullyQualifiedName": .string(function)])])
        }
        var result: [String: JSON] = ["location": .object(location)]
        if let module = frame.module { result["module"] = .string(module) }
        return .object(result)
    }

    static func directory(_ path: String) -> String { path.hasSuffix("/") ? path : path + "/" }

    static func fileURI(_ path: String) -> String { "file://" + percentEncoded(path) }

    /// RFC 3986 path characters kept, everything else as `%XX` of its UTF-8 bytes.
    static func percentEncoded(_ path: String) -> String {
        var result = ""
        for byte in path.utf8 {
            let character = Character(Unicode.Scalar(byte))
            if byte < 0x80 && (character.isLetter || character.isNumber || "-._~/!$&'()*+,;=:@".contains(character)) {
                result.append(character)
            } else {
                result += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return result
    }

    /// FNV-1a of the stack key, in hex: stable across runs and builds.
    static func fingerprint(_ key: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }
}
