/// The RESP2 a subscribed connection receives, parsed as it arrives in reads of any size, with one limit: a bulk
/// string longer than `maxBulk` is skipped as it streams past, never buffered, and its reply comes out with
/// `.skipped(length)` in its place. This is what lets the subscriber drop an oversized message without holding it
/// (hiredis' reader buffers a whole reply, and then copies it, before anyone can look at its size).
struct RESPStream {
    enum Value: Equatable {
        case string([UInt8])
        /// A bulk string of this many bytes that was over the limit and skipped.
        case skipped(Int)
        case status(String)
        case error(String)
        case integer(Int)
        case null
        case array([Value])

        var text: String? {
            switch self {
            case .string(let bytes): String(decoding: bytes, as: UTF8.self)
            case .status(let text): text
            default: nil
            }
        }
    }

    struct ProtocolError: Error, CustomStringConvertible {
        let reason: String
        var description: String { "protocol error: \(reason)" }
    }

    let maxBulk: Int
    /// The longest header line (`+OK`, `-ERR …`, `$123`) accepted: anything longer is not Redis.
    static let maxLine = 64 * 1024

    private enum State {
        case line
        /// Copying `remaining` more bytes of a bulk string into `bulk`.
        case bulk(remaining: Int)
        /// Skipping `remaining` more bytes of a bulk string of `length` bytes.
        case skip(remaining: Int, length: Int)
        /// The `\r\n` after a bulk string: `remaining` bytes of it still to come.
        case bulkEnd(remaining: Int, value: Value)
    }

    private var state = State.line
    private var line: [UInt8] = []
    private var bulk: [UInt8] = []
    /// Arrays being filled, innermost last: how many elements each still needs, and those it has.
    private var open: [(remaining: Int, elements: [Value])] = []

    init(maxBulk: Int) {
        self.maxBulk = maxBulk
    }

    /// Consumes every byte of `input`, appending each complete top-level reply to `replies`; a reply cut by the
    /// end of `input` is kept and completed by the next call.
    mutating func feed(_ input: UnsafeRawBufferPointer, into replies: inout [Value]) throws {
        var index = 0
        let count = input.count
        while index < count {
            switch state {
            case .line:
                // Up to the \n; a header line is short, so copying it byte by byte costs nothing.
                var end = index
                while end < count && input[end] != 0x0A { end += 1 }
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[index..<end]))
                guard line.count <= Self.maxLine else { throw ProtocolError(reason: "a header line longer than \(Self.maxLine) bytes") }
                guard end < count else { return }
                index = end + 1
                guard line.last == 0x0D else { throw ProtocolError(reason: "a line not ended by \\r\\n") }
                line.removeLast()
                try header(into: &replies)
                line.removeAll(keepingCapacity: true)
            case .bulk(let remaining):
                let take = min(remaining, count - index)
                bulk.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[index..<index + take]))
                index += take
                if take == remaining {
                    state = .bulkEnd(remaining: 2, value: .string(bulk))
                    bulk = []
                } else {
                    state = .bulk(remaining: remaining - take)
                }
            case .skip(let remaining, let length):
                let take = min(remaining, count - index)
                index += take
                state = take == remaining ? .bulkEnd(remaining: 2, value: .skipped(length)) : .skip(remaining: remaining - take, length: length)
            case .bulkEnd(let remaining, let value):
                let expected: UInt8 = remaining == 2 ? 0x0D : 0x0A
                guard input[index] == expected else { throw ProtocolError(reason: "a bulk string not followed by \\r\\n") }
                index += 1
                if remaining == 2 {
                    state = .bulkEnd(remaining: 1, value: value)
                } else {
                    state = .line
                    complete(value, into: &replies)
                }
            }
        }
    }

    private mutating func header(into replies: inout [Value]) throws {
        guard let kind = line.first else { throw ProtocolError(reason: "an empty line") }
        let rest = line.dropFirst()
        switch kind {
        case UInt8(ascii: "+"): complete(.status(String(decoding: rest, as: UTF8.self)), into: &replies)
        case UInt8(ascii: "-"): complete(.error(String(decoding: rest, as: UTF8.self)), into: &replies)
        case UInt8(ascii: ":"): complete(.integer(try number(rest)), into: &replies)
        case UInt8(ascii: "$"):
            let length = try number(rest)
            if length < 0 {
                complete(.null, into: &replies)
            } else if length > maxBulk {
                state = .skip(remaining: length, length: length)
            } else {
                bulk.reserveCapacity(length)
                state = length == 0 ? .bulkEnd(remaining: 2, value: .string([])) : .bulk(remaining: length)
            }
        case UInt8(ascii: "*"):
            let elements = try number(rest)
            if elements < 0 {
                complete(.null, into: &replies)
            } else if elements == 0 {
                complete(.array([]), into: &replies)
            } else {
                guard open.count < 8 else { throw ProtocolError(reason: "arrays nested deeper than 8") }
                open.append((elements, []))
            }
        default:
            throw ProtocolError(reason: "unknown reply type byte \(kind)")
        }
    }

    /// A decimal length or integer, parsed in place: three of them per message, so no String on the way.
    private func number(_ digits: ArraySlice<UInt8>) throws -> Int {
        var rest = digits[...]
        let negative = rest.first == UInt8(ascii: "-")
        if negative { rest = rest.dropFirst() }
        var value = 0
        for digit in rest {
            guard (0x30...0x39).contains(digit), rest.count <= 18 else {
                throw ProtocolError(reason: "\"\(String(decoding: digits.prefix(32), as: UTF8.self))\" is not a number")
            }
            value = value * 10 + Int(digit - 0x30)
        }
        guard !rest.isEmpty else { throw ProtocolError(reason: "a number without digits") }
        return negative ? -value : value
    }

    private mutating func complete(_ value: Value, into replies: inout [Value]) {
        var value = value
        while !open.isEmpty {
            open[open.count - 1].elements.append(value)
            open[open.count - 1].remaining -= 1
            guard open[open.count - 1].remaining == 0 else { return }
            value = .array(open.removeLast().elements)
        }
        replies.append(value)
    }

    /// `command` as RESP, the way every client sends one: an array of bulk strings.
    static func encode(_ command: [[UInt8]]) -> [UInt8] {
        var out = Array("*\(command.count)\r\n".utf8)
        for argument in command {
            out += Array("$\(argument.count)\r\n".utf8)
            out += argument
            out += [0x0D, 0x0A]
        }
        return out
    }
}
