import Foundation

/// A JSON value: lets the renderers (reports, diffs, check verdicts, SARIF) write `null` for every unknown value
/// instead of omitting keys. Non-finite doubles become `null`.
public enum JSON: Encodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case unsigned(UInt64)
    case signed(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    public static func optional<T>(_ value: T?, _ make: (T) -> JSON) -> JSON { value.map(make) ?? .null }
    public static func hex(_ value: UInt64) -> JSON { .string("0x" + String(value, radix: 16)) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .unsigned(let value): try container.encode(value)
        case .signed(let value): try container.encode(value)
        case .double(let value): if value.isFinite { try container.encode(value) } else { try container.encodeNil() }
        case .string(let value): try container.encode(value)
        case .array(let values): try container.encode(values)
        case .object(let members): try container.encode(members)
        }
    }

    /// On one line, keys sorted, `/` unescaped: for data embedded in pages and export files.
    public func compact() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Pretty-printed, keys sorted, `/` unescaped, one trailing newline.
    public func rendered() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }
}

extension JSON {
    /// ``rendered()`` for values that cannot fail to encode (no custom encoders inside): `{}` if it ever did.
    public func renderedOrEmpty() -> String { (try? rendered()) ?? "{}\n" }
}
