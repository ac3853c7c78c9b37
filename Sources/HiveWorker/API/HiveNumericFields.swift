import HTTPTypes

/// Header fields of a response whose values are integers (`X-Hive-Worker: 3`), appended with
/// `HiveResponse.appendField(_:_:)`. They are kept as numbers and written as decimal digits straight into the
/// response's bytes, after the response's `headerFields`, in the order appended: no `String` is formatted, no value
/// checked, no `HTTPFields` copied or grown, and the first two take no allocation. Appending an `HTTPField` with
/// `String(n)` to `headerFields` cost about 650 instructions a field.
///
/// Read as a collection, each is an `HTTPField` (made on access).
public struct HiveNumericFields: Sendable, RandomAccessCollection {
    struct Entry: Sendable {
        let name: HTTPField.Name
        let magnitude: UInt64
        let negative: Bool

        var field: HTTPField {
            HTTPField(name: name, value: negative ? "-\(magnitude)" : String(magnitude))
        }
    }

    /// The first two, inline: what an application adds to every response fits without an allocation.
    private var first: Entry?
    private var second: Entry?
    private var more: [Entry] = []

    /// No fields.
    public init() {}

    /// 0.
    public var startIndex: Int { 0 }

    /// How many fields.
    public var endIndex: Int { first == nil ? 0 : second == nil ? 1 : 2 + more.count }

    /// The field at `position`, as an `HTTPField`.
    public subscript(position: Int) -> HTTPField { entry(position).field }

    private func entry(_ position: Int) -> Entry {
        precondition(position >= 0 && position < endIndex, "position \(position) out of range of \(endIndex) fields")
        switch position {
        case 0: return first!
        case 1: return second!
        default: return more[position - 2]
        }
    }

    mutating func append(_ name: HTTPField.Name, magnitude: UInt64, negative: Bool) {
        let entry = Entry(name: name, magnitude: magnitude, negative: negative)
        if first == nil {
            first = entry
        } else if second == nil {
            second = entry
        } else {
            more.append(entry)
        }
    }

    /// At most how many bytes `write` writes.
    var maxBytes: Int {
        guard let first else { return 0 }
        var total = first.name.rawName.utf8.count + 25
        if let second { total += second.name.rawName.utf8.count + 25 }
        for entry in more { total += entry.name.rawName.utf8.count + 25 }
        return total
    }

    /// Writes each field ("Name: digits" CRLF) into `memory` at `at`, which it advances; the caller made room for
    /// `maxBytes`.
    @inline(__always)
    func write(to memory: UnsafeMutableRawBufferPointer, at: inout Int) {
        guard let first else { return }
        Self.write(first, to: memory, at: &at)
        guard let second else { return }
        Self.write(second, to: memory, at: &at)
        for entry in more { Self.write(entry, to: memory, at: &at) }
    }

    @inline(__always)
    private static func write(_ entry: Entry, to memory: UnsafeMutableRawBufferPointer, at: inout Int) {
        var name = entry.name.rawName
        name.withUTF8 { bytes in
            UnsafeMutableRawBufferPointer(rebasing: memory[at..<(at + bytes.count)]).copyMemory(from: UnsafeRawBufferPointer(bytes))
            at += bytes.count
        }
        memory[at] = UInt8(ascii: ":")
        memory[at + 1] = UInt8(ascii: " ")
        at += 2
        if entry.negative {
            memory[at] = UInt8(ascii: "-")
            at += 1
        }
        // Two digits a division, from the end: half the divisions of one at a time.
        var digits = 1
        var limit: UInt64 = 10
        while digits < 20 && entry.magnitude >= limit {
            digits += 1
            limit &*= 10
        }
        var rest = entry.magnitude
        var index = at + digits
        while rest >= 10 {
            let pair = Int(truncatingIfNeeded: rest % 100)
            rest /= 100
            index -= 2
            memory[index] = digitPairs[pair &* 2]
            memory[index + 1] = digitPairs[pair &* 2 + 1]
        }
        if index > at { memory[at] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest) }
        at += digits
        memory[at] = UInt8(ascii: "\r")
        memory[at + 1] = UInt8(ascii: "\n")
        at += 2
    }
}

/// "00" "01" ... "99": the two digits of every number below 100.
private let digitPairs: [UInt8] = (0..<100).flatMap { [UInt8(ascii: "0") + UInt8($0 / 10), UInt8(ascii: "0") + UInt8($0 % 10)] }

extension HiveResponse {
    /// Appends the field `name: value` with `value` in decimal (`X-Hive-Worker: 3`), written after
    /// ``headerFields`` (see ``numericFields``): far cheaper than appending `HTTPField(name:value: String(value))`.
    /// `Content-Length` and `Connection` are the server's and are ignored here.
    public mutating func appendField(_ name: HTTPField.Name, _ value: Int) {
        guard !HTTPResponseBytes.isFraming(name) else { return }
        numericFields.append(name, magnitude: UInt64(value.magnitude), negative: value < 0)
    }

    /// Appends the field `name: value` with `value` in decimal (a `ConnectionID`'s `rawValue`), as
    /// the `Int` one does.
    public mutating func appendField(_ name: HTTPField.Name, _ value: UInt64) {
        guard !HTTPResponseBytes.isFraming(name) else { return }
        numericFields.append(name, magnitude: value, negative: false)
    }
}
