import Foundation

/// Function symbols of one ELF file from `.symtab` (or `.dynsym` when stripped), for name lookups by
/// module-relative address. This is the fallback symbolizer: names only, but fast (a few ms for thousands
/// of lookups) and dependency-free. The file is untrusted input: every offset is bounds-checked.
public struct ELFSymbolTable: Sendable {
    struct Symbol: Sendable {
        var start: UInt64
        var size: UInt64
        var name: String
    }

    private let symbols: [Symbol]

    /// Number of function symbols found.
    public var count: Int { symbols.count }

    /// Reads the file at `path`; nil if it is not a readable 64-bit little-endian ELF file.
    public init?(path: String) {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else { return nil }
        guard let symbols = data.withUnsafeBytes({ ELFSymbolTable.parse($0) }) else { return nil }
        self.symbols = symbols
    }

    /// The function containing `offset` (a file virtual address), with the distance from its start.
    public func function(containing offset: UInt64) -> (name: String, displacement: UInt64)? {
        var low = 0, high = symbols.count
        while low < high {
            let middle = (low + high) / 2
            if symbols[middle].start <= offset { low = middle + 1 } else { high = middle }
        }
        // Symbols may nest or overlap (aliases): scan back a little for one whose range holds the address.
        var index = low - 1
        var checked = 0
        while index >= 0 && checked < 8 {
            let symbol = symbols[index]
            if offset - symbol.start < max(symbol.size, 1) { return (symbol.name, offset - symbol.start) }
            index -= 1
            checked += 1
        }
        return nil
    }

    private struct Reader {
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

        func string(at offset: UInt64, limit: UInt64) -> String? {
            guard offset < limit, limit <= UInt64(bytes.count) else { return nil }
            var end = Int(offset)
            while end < Int(limit) && bytes[end] != 0 { end += 1 }
            guard end < Int(limit) else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<end]), as: UTF8.self)
        }
    }

    private struct Section {
        var type: UInt32
        var offset: UInt64
        var size: UInt64
        var link: UInt32
        var entrySize: UInt64
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer) -> [Symbol]? {
        let reader = Reader(bytes: bytes)
        guard bytes.count >= 64, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46,
            bytes[4] == 2, bytes[5] == 1,  // ELFCLASS64, little-endian
            let sectionTable = reader.integer(UInt64.self, at: 0x28),
            let sectionEntrySize = reader.integer(UInt16.self, at: 0x3a),
            let sectionCount = reader.integer(UInt16.self, at: 0x3c),
            sectionEntrySize >= 64
        else { return nil }
        var sections: [Section] = []
        for index in 0..<UInt64(sectionCount) {
            let base = sectionTable &+ index &* UInt64(sectionEntrySize)
            guard let type = reader.integer(UInt32.self, at: base + 4),
                let offset = reader.integer(UInt64.self, at: base + 24),
                let size = reader.integer(UInt64.self, at: base + 32),
                let link = reader.integer(UInt32.self, at: base + 40),
                let entrySize = reader.integer(UInt64.self, at: base + 56)
            else { return nil }
            sections.append(Section(type: type, offset: offset, size: size, link: link, entrySize: entrySize))
        }
        let symbolTableType: UInt32 = 2, dynamicSymbolType: UInt32 = 11
        let preferred = sections.filter { $0.type == symbolTableType }
        let tables = preferred.isEmpty ? sections.filter { $0.type == dynamicSymbolType } : preferred
        var symbols: [Symbol] = []
        for table in tables where table.entrySize >= 24 && Int(table.link) < sections.count {
            let strings = sections[Int(table.link)]
            let (stringsEnd, overflow) = strings.offset.addingReportingOverflow(strings.size)
            guard !overflow else { continue }
            let count = min(table.size / table.entrySize, 10_000_000)
            for index in 0..<count {
                let entry = table.offset &+ index &* table.entrySize
                guard let nameOffset = reader.integer(UInt32.self, at: entry),
                    let info = reader.integer(UInt8.self, at: entry + 4),
                    let sectionIndex = reader.integer(UInt16.self, at: entry + 6),
                    let value = reader.integer(UInt64.self, at: entry + 8),
                    let size = reader.integer(UInt64.self, at: entry + 16)
                else { break }
                let type = info & 0xf
                guard type == 2 || type == 10, sectionIndex != 0, value != 0 else { continue }  // FUNC, IFUNC
                guard let name = reader.string(at: strings.offset &+ UInt64(nameOffset), limit: stringsEnd),
                    !name.isEmpty
                else { continue }
                symbols.append(Symbol(start: value, size: size, name: name))
            }
        }
        symbols.sort { ($0.start, $1.size) < ($1.start, $0.size) }
        return symbols
    }
}
