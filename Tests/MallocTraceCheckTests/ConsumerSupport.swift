import Foundation

/// Runs tools/check-consumers.py, which reads our outputs with the parsers CI systems use.
enum Consumers {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("tools/check-consumers.py").path

    /// True when python3 and the consumer (`junit` or `sarif`) are installed.
    static func available(_ consumer: String) -> Bool {
        (try? run(["probe", consumer]))?.status == 0
    }

    /// Writes `text` to a temporary file and runs the script on it.
    static func read(_ consumer: String, _ text: String) throws -> (status: Int32, output: String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("consumer-\(UUID())").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try run([consumer, path])
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
