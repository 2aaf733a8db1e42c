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
    /// True when the names come from `.dynsym` only (the file is stripped): internal functions are missing.
    public let isDynamicOnly: Bool
    /// Build-id, debug link and section facts of the same file.
    public let info: ELFFileInfo

    /// Reads the file at `path`; nil if it is not a readable 64-bit little-endian ELF file.
    public init?(path: String) {
        guard ELFFile.isRegularFile(path),
            let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        else { return nil }
        guard
            let parsed = data.withUnsafeBytes({ bytes -> ([Symbol], Bool, ELFFileInfo)? in
                guard let file = ELFFile(bytes) else { return nil }
                let (symbols, dynamicOnly) = ELFSymbolTable.parse(file)
                return (symbols, dynamicOnly, ELFFileInfo(file))
            })
        else { return nil }
        (symbols, isDynamicOnly, info) = parsed
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

    private static func parse(_ file: ELFFile) -> ([Symbol], Bool) {
        let reader = file.reader
        let sections = file.sections
        let preferred = sections.filter { $0.type == ELFFile.symbolTableType }
        let tables = preferred.isEmpty ? sections.filter { $0.type == ELFFile.dynamicSymbolType } : preferred
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
        return (symbols, preferred.isEmpty)
    }
}
