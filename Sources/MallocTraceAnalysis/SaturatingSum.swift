extension UInt64 {
    /// Adds without wrapping: a total that would pass 2^64 - 1 stays there. Byte totals of a hostile or
    /// damaged trace (sizes near 2^64) then read "as large as can be" instead of small and wrong.
    @inline(__always)
    public static func +|= (total: inout UInt64, part: UInt64) {
        let (sum, overflow) = total.addingReportingOverflow(part)
        total = overflow ? .max : sum
    }

    /// The sum, or 2^64 - 1 where it would pass it.
    @inline(__always)
    public static func +| (left: UInt64, right: UInt64) -> UInt64 {
        let (sum, overflow) = left.addingReportingOverflow(right)
        return overflow ? .max : sum
    }
}

infix operator +|= : AssignmentPrecedence
infix operator +| : AdditionPrecedence
