internal import CMallocTraceFormat

/// What the header defines, as the reader uses it: the magic bytes and the offset of every fixed field, taken
/// from the C declarations (`MemoryLayout.offset(of:)`) so that no number is written twice. The header's
/// `_Static_assert`s (format_layout.c) and HeaderTests pin them to the bytes docs/trace-format.md draws.
enum FormatLayout {
    /// `MT_MAGIC`, the first bytes of every trace.
    static let magic: [UInt8] = Array(MT_MAGIC.utf8)

    /// The byte offset of `field` in its record.
    static func offset<Record, Value>(_ field: KeyPath<Record, Value>) -> Int {
        guard let offset = MemoryLayout<Record>.offset(of: field) else {
            preconditionFailure("\(field) is not a stored field of \(Record.self)")
        }
        return offset
    }
}

extension ByteCursor {
    /// The little-endian value of `field` in a `Record` that starts at `recordStart`; the caller has checked
    /// that the whole fixed part of the record is in range.
    func field<Record, Value: FixedWidthInteger>(_ field: KeyPath<Record, Value>, of recordStart: Int) -> Value {
        littleEndian(Value.self, at: recordStart + FormatLayout.offset(field))
    }
}

/// An event opcode as the byte in the stream (the C enum imports as a 32-bit value).
@inline(__always)
func opcode(_ value: mt_event_opcode) -> UInt8 { UInt8(truncatingIfNeeded: value.rawValue) }
