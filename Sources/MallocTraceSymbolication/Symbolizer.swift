/// Resolves module-relative addresses to function names, one cached symbol table per module file.
///
/// Only addresses that are actually printed are looked up. Return addresses point after the call, so the
/// lookup uses `offset - 1` to land inside the calling function.
public final class Symbolizer {
    private var tables: [String: ELFSymbolTable?] = [:]

    public init() {}

    /// The function containing the return address `offset` in the module at `path`, if its file has symbols.
    public func functionName(modulePath: String, offset: UInt64) -> String? {
        guard offset > 0 else { return nil }
        let table: ELFSymbolTable?
        if let cached = tables[modulePath] {
            table = cached
        } else {
            table = ELFSymbolTable(path: modulePath)
            tables[modulePath] = table
        }
        return table?.function(containing: offset - 1)?.name
    }
}
