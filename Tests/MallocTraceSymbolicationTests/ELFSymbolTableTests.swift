import Foundation
import Testing

@testable import MallocTraceSymbolication

@_cdecl("mt_symbolication_test_marker")
func symbolicationTestMarker() -> Int { 42 }

@Suite struct ELFSymbolTableTests {
    @Test func findsAFunctionOfThisTestBinary() throws {
        let table = try #require(ELFSymbolTable(path: "/proc/self/exe"))
        #expect(table.count > 100)
        // The marker's runtime address minus this executable's load bias (where its file offset 0 is
        // mapped; the first PT_LOAD has virtual address 0 in a PIE) is its file address.
        let function: @convention(c) () -> Int = symbolicationTestMarker
        let marker = unsafeBitCast(function, to: UInt.self)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        // String(contentsOfFile:) returns only the first page of a /proc file; under ThreadSanitizer the
        // executable's lines come after pages of the sanitizer's own mappings.
        let mapsFile = try #require(FileHandle(forReadingAtPath: "/proc/self/maps"))
        defer { try? mapsFile.close() }
        let maps = String(decoding: try mapsFile.readToEnd() ?? Data(), as: UTF8.self)
        let line = try #require(
            maps.split(separator: "\n").first { $0.hasSuffix(executable) && $0.split(separator: " ")[2] == "00000000" })
        let base = try #require(UInt(line.prefix { $0 != "-" }, radix: 16))
        let offset = UInt64(marker - base)
        let found = try #require(table.function(containing: offset + 1))
        #expect(found.name == "mt_symbolication_test_marker")
        #expect(found.displacement == 1)
    }

    @Test func rejectsFilesThatAreNotELF() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-elf-\(UUID().uuidString)").path
        try Data(repeating: 0x41, count: 200).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(ELFSymbolTable(path: path) == nil)
        #expect(ELFSymbolTable(path: "/nonexistent/file") == nil)
        // Untrusted module paths: never read a device or a FIFO (it would never end).
        #expect(ELFSymbolTable(path: "/dev/zero") == nil)
        #expect(ELFFileInfo(path: "/dev/zero") == nil)
        #expect(ELFFileInfo(path: "/dev/stdin") == nil)
        let symbolizer = Symbolizer(backend: .symbolTables)
        let zero = symbolizer.symbolicate(ModuleAddress(module: "/dev/zero", buildID: [], offset: 0x10))
        #expect(zero.frames.isEmpty)
        #expect(zero.problem == "not a regular file")
    }

    @Test func survivesTruncatedELF() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: "/bin/true"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cut-elf-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        for length in stride(from: 0, to: original.count, by: max(1, original.count / 97)) {
            try original.prefix(length).write(to: URL(fileURLWithPath: path))
            _ = ELFSymbolTable(path: path)?.function(containing: 0x1000)
        }
    }
}

@Suite struct ELFFileInfoTests {
    private func readelf(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/readelf")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self)
    }

    @Test func buildIDMatchesReadelf() throws {
        let info = try #require(ELFFileInfo(path: "/bin/true"))
        let notes = try readelf(["-n", "/bin/true"])
        let line = try #require(notes.split(separator: "\n").first { $0.contains("Build ID:") })
        let expected = try #require(line.split(separator: " ").last.map(String.init))
        #expect(info.buildIDHex == expected)
        #expect(!info.hasSymbolTable)  // Debian strips its binaries
        #expect(info.debugLink?.hasSuffix(".debug") == true)
        #expect(info.hasInterpreter)  // dynamically linked
    }

    @Test func thisTestBinaryHasSymbolsAndDWARF() throws {
        let info = try #require(ELFFileInfo(path: "/proc/self/exe"))
        #expect(info.hasSymbolTable)
        #expect(info.hasDebugInfo)
    }

    @Test func debugFilesAreFoundByBuildID() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("debug-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent(".build-id/ab"), withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(".build-id/ab/cdef01.debug").path
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        let files = DebugFiles(directories: [directory.path])
        #expect(files.file(buildID: [0xab, 0xcd, 0xef, 0x01]) == file)
        #expect(files.file(buildID: [0xab, 0xcd]) == nil)
        #expect(files.file(buildID: []) == nil)
    }
}
