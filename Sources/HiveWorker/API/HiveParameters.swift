/// Named values in the order they came: a request's query parameters (`HiveRequest.query`) or the path parameters a
/// `HiveRouter` route captured (`HiveRequest.parameters`). A name may repeat ("?tag=a&tag=b"): `self[name]` is the
/// first value, `values(name)` all of them. Names compare exactly (case-sensitively), as URLs do.
public struct HiveParameters: Sendable {
    /// Every name and value, in order, decoded.
    public private(set) var pairs: [(name: String, value: String)]

    public init(_ pairs: [(name: String, value: String)] = []) {
        self.pairs = pairs
    }

    /// Parses a query string ("a=1&b=two+words&c=%C3%A9", without the "?") as HTML forms encode it
    /// (application/x-www-form-urlencoded): pairs split at "&", name and value at the first "=", "+" is a space and
    /// "%XX" the byte it encodes. A name without "=" has the value ""; empty pieces ("a=1&&b=2") are skipped. A "%"
    /// without two hex digits after it stays as it is, and bytes that do not decode to UTF-8 become U+FFFD, so no
    /// query is refused here.
    public init(query: some StringProtocol) {
        var pairs = [(name: String, value: String)]()
        for piece in Substring(query).split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring
            let value: Substring
            if let equals = piece.firstIndex(of: "=") {
                name = piece[..<equals]
                value = piece[piece.index(after: equals)...]
            } else {
                name = piece
                value = ""
            }
            pairs.append((PercentDecoding.decode(name, plusIsSpace: true), PercentDecoding.decode(value, plusIsSpace: true)))
        }
        self.pairs = pairs
    }

    /// The first value named `name`, nil if there is none.
    public subscript(name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    /// Every value named `name`, in order; empty if there is none.
    public func values(_ name: String) -> [String] {
        pairs.compactMap { $0.name == name ? $0.value : nil }
    }

    public var isEmpty: Bool { pairs.isEmpty }
    public var count: Int { pairs.count }

    public mutating func append(name: String, value: String) {
        pairs.append((name, value))
    }
}

extension HiveParameters: Sequence {
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        pairs.makeIterator()
    }
}

extension HiveParameters: Equatable {
    public static func == (lhs: HiveParameters, rhs: HiveParameters) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.name == $1.name && $0.value == $1.value }
    }
}

extension HiveParameters: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements.map { (name: $0.0, value: $0.1) })
    }
}

extension HiveParameters: CustomStringConvertible {
    public var description: String {
        "[" + pairs.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
