import Foundation
import MallocTraceCheck
import Testing

/// Found by tools/fuzz/fuzz-cli.py: `check --save-baseline /dev/null` (and --junit, --sarif) renamed a new
/// file over the path, which, run as root, replaced /dev/null itself with a regular file. A FIFO stands in
/// for the device here, so that a regression cannot damage the machine running the tests.
@Suite struct OutputFileTests {
    @Test func aFIFOIsWrittenThroughNotReplaced() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outputfile-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // A reader first, so that opening the FIFO for writing does not wait.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        try OutputFile.write(Data("baseline\n".utf8), toPath: fifo)
        var status = stat()
        #expect(lstat(fifo, &status) == 0)
        #expect(status.st_mode & S_IFMT == S_IFIFO, "the FIFO is still a FIFO")
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(reader, &buffer, buffer.count)
        #expect(count == 9)
        #expect(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self) == "baseline\n")
    }

    @Test func aRegularFileIsReplacedWhole() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("outputfile-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(String(repeating: "x", count: 100).utf8).write(to: URL(fileURLWithPath: path))
        try OutputFile.write(Data("{}\n".utf8), toPath: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "{}\n")
    }
}
