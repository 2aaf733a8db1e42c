extension Array where Element == UInt8 {
    /// Appends `value` as an unsigned LEB128 varint (the trace format's, the protobuf wire format's and the
    /// stored analysis's).
    @inline(__always)
    public mutating func appendVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        append(UInt8(value))
    }
}
