import Foundation

/// What a symbolizer needs to know about an ELF file before trusting it: its GNU build-id, where its
/// separate debug information may live (`.gnu_debuglink`), and whether it still has a full symbol table
/// and DWARF. Every offset is bounds-checked: the file is untrusted input.
public struct ELFFileInfo: Sendable, Equatable {
    /// The `NT_GNU_BUILD_ID` note, empty when there is none.
    public var buildID: [UInt8]
    /// The file name in `.gnu_debuglink`, if present.
    public var debugLink: String?
    /// True when the file has a `.symtab` (not stripped).
    public var hasSymbolTable: Bool
    /// True when the file has a `.debug_info` section (DWARF).
    public var hasDebugInfo: Bool
    /// True when the file names a program interpreter (`PT_INTERP`): a dynamically linked executable,
    /// which the dynamic loader starts and LD_PRELOAD can reach.
    public var hasInterpreter: Bool

    /// Reads the headers of the file at `path`; nil if it is not a readable 64-bit little-endian ELF file.
    public init?(path: String) {
        guard ELFFile.isRegularFile(path),
            let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped),
            let info = data.withUnsafeBytes({ bytes -> ELFFileInfo? in
                guard let file = ELFFile(bytes) else { return nil }
                return ELFFileInfo(file)
            })
        else { return nil }
        self = info
    }

    init(_ file: ELFFile) {
        buildID = file.buildID() ?? []
        debugLink = file.section(named: ".gnu_debuglink").flatMap { file.reader.string(at: $0.offset, limit: $0.end) }
        hasSymbolTable = file.sections.contains { $0.type == ELFFile.symbolTableType }
        hasDebugInfo = file.section(named: ".debug_info").map { $0.size > 0 && $0.type != ELFFile.noBitsType } ?? false
        hasInterpreter = file.hasProgramHeader(type: ELFFile.interpreterType)
    }

    /// The build-id as lowercase hex, as debug directories name files.
    public var buildIDHex: String { buildID.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}

/// Bounds-checked reads of ELF headers and sections from a mapped file.
struct ELFFile {
    struct Section {
        var nameOffset: UInt32
        var type: UInt32
        var offset: UInt64
        var size: UInt64
        var link: UInt32
        var entrySize: UInt64
        var name = ""

        var end: UInt64 {
            let (end, overflow) = offset.addingReportingOverflow(size)
            return overflow ? UInt64.max : end
        }
    }

    struct Reader {
        let bytes: UnsafeRawBufferPointer

        func integer<T: FixedWidthInteger>(_: T.Type, at offset: UInt64) -> T? {
            let size = UInt64(MemoryLayout<T>.size)
            guard offset <= UInt64(bytes.count), size <= UInt64(bytes.count) - offset else { return nil }
            var value: T = 0
            withUnsafeMutableBytes(of: &value) {
                $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<Int(offset + size)]))
            }
            return T(littleEndian: value)
        }

        /// The NUL-terminated string at `offset`, which must end before `limit`.
        func string(at offset: UInt64, limit: UInt64) -> String? {
            let limit = min(limit, UInt64(bytes.count))
            guard offset < limit else { return nil }
            var end = Int(offset)
            while end < Int(limit) && bytes[end] != 0 { end += 1 }
            guard end < Int(limit) else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<end]), as: UTF8.self)
        }
    }

    static let symbolTableType: UInt32 = 2
    static let noteType: UInt32 = 7
    static let noBitsType: UInt32 = 8
    static let dynamicSymbolType: UInt32 = 11
    static let interpreterType: UInt32 = 3  // PT_INTERP, a program header type

    let reader: Reader
    let sections: [Section]

    /// True for a regular file (symbolic links followed). Module paths come from untrusted traces: a path
    /// such as /dev/zero or a FIFO must never be read.
    static func isRegularFile(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
    }

    init?(_ bytes: UnsafeRawBufferPointer) {
        let reader = Reader(bytes: bytes)
        guard bytes.count >= 64, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46,
            bytes[4] == 2, bytes[5] == 1,  // ELFCLASS64, little-endian
            let sectionTable = reader.integer(UInt64.self, at: 0x28),
            let sectionEntrySize = reader.integer(UInt16.self, at: 0x3a),
            let sectionCount = reader.integer(UInt16.self, at: 0x3c),
            let namesIndex = reader.integer(UInt16.self, at: 0x3e),
            sectionEntrySize >= 64
        else { return nil }
        var sections: [Section] = []
        for index in 0..<UInt64(sectionCount) {
            let base = sectionTable &+ index &* UInt64(sectionEntrySize)
            guard let nameOffset = reader.integer(UInt32.self, at: base),
                let type = reader.integer(UInt32.self, at: base + 4),
                let offset = reader.integer(UInt64.self, at: base + 24),
                let size = reader.integer(UInt64.self, at: base + 32),
                let link = reader.integer(UInt32.self, at: base + 40),
                let entrySize = reader.integer(UInt64.self, at: base + 56)
            else { return nil }
            sections.append(
                Section(
                    nameOffset: nameOffset, type: type, offset: offset, size: size, link: link, entrySize: entrySize))
        }
        if Int(namesIndex) < sections.count {
            let names = sections[Int(namesIndex)]
            for index in sections.indices {
                sections[index].name =
                    reader.string(at: names.offset &+ UInt64(sections[index].nameOffset), limit: names.end) ?? ""
            }
        }
        self.reader = reader
        self.sections = sections
    }

    func section(named name: String) -> Section? { sections.first { $0.name == name && $0.type != Self.noBitsType } }

    /// Whether a program header of `type` exists (bounds-checked; false for a damaged table).
    func hasProgramHeader(type wanted: UInt32) -> Bool {
        guard let table = reader.integer(UInt64.self, at: 0x20),
            let entrySize = reader.integer(UInt16.self, at: 0x36),
            let count = reader.integer(UInt16.self, at: 0x38),
            entrySize >= 4
        else { return false }
        return (0..<UInt64(count)).contains { index in
            reader.integer(UInt32.self, at: table &+ index &* UInt64(entrySize)) == wanted
        }
    }

    /// The GNU build-id from the first note section that carries one.
    func buildID() -> [UInt8]? {
        for note in sections where note.type == Self.noteType {
            var position = note.offset
            let end = min(note.end, UInt64(reader.bytes.count))
            while position &+ 12 <= end {
                guard let nameSize = reader.integer(UInt32.self, at: position),
                    let descriptionSize = reader.integer(UInt32.self, at: position + 4),
                    let type = reader.integer(UInt32.self, at: position + 8)
                else { break }
                let nameStart = position + 12
                let descriptionStart = nameStart + (UInt64(nameSize) + 3) & ~3
                let next = descriptionStart + (UInt64(descriptionSize) + 3) & ~3
                guard next <= end else { break }
                if type == 3, nameSize == 4, reader.string(at: nameStart, limit: nameStart + 4) == "GNU",
                    descriptionSize > 0, descriptionSize <= 64
                {
                    return Array(reader.bytes[Int(descriptionStart)..<Int(descriptionStart) + Int(descriptionSize)])
                }
                position = next
            }
        }
        return nil
    }
}
