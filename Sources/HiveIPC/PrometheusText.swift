/// Writes the Prometheus text exposition format (version 0.0.4): per family one `# HELP` and one `# TYPE` line,
/// then its samples, families in the order they are added. Names are checked, label values and help text are
/// escaped, so nothing a caller passes (a Redis address, a version string) can break a line.
package struct PrometheusText {
    package enum Kind: String, Sendable {
        case counter
        case gauge
        case histogram
    }

    package struct Sample: Sendable {
        package var suffix: String
        package var labels: [(name: String, value: String)]
        package var value: String

        /// - Parameters:
        ///   - suffix: appended to the family name (`_bucket`, `_sum`, `_count` of a histogram), usually empty.
        package init(_ labels: [(name: String, value: String)] = [], _ value: UInt64, suffix: String = "") {
            self.labels = labels
            self.value = String(value)
            self.suffix = suffix
        }

        package init(_ labels: [(name: String, value: String)] = [], _ value: Double, suffix: String = "") {
            self.labels = labels
            self.value = PrometheusText.format(value)
            self.suffix = suffix
        }
    }

    package private(set) var text = ""
    private var names: Set<String> = []

    package init() {}

    /// Adds one metric family. A family with no samples is still described (HELP and TYPE), as client libraries
    /// do for a labelled metric with no children yet.
    package mutating func family(_ name: String, _ kind: Kind, help: String, _ samples: [Sample]) {
        precondition(Self.isValidName(name), "invalid metric name \(name)")
        precondition(names.insert(name).inserted, "metric family \(name) added twice")
        precondition(kind != .counter || name.hasSuffix("_total"), "counter \(name) must end in _total")
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
        for sample in samples {
            text += name + sample.suffix
            if !sample.labels.isEmpty {
                text += "{"
                text += sample.labels.map { label in
                    precondition(Self.isValidLabelName(label.name), "invalid label name \(label.name) on \(name)")
                    return "\(label.name)=\"\(Self.escapeLabelValue(label.value))\""
                }.joined(separator: ",")
                text += "}"
            }
            text += " \(sample.value)\n"
        }
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    package static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy { isLetter($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x3A }
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, and not starting with `__` (reserved for Prometheus itself).
    package static func isValidLabelName(_ name: String) -> Bool {
        isValidName(name) && !name.contains(":") && !name.hasPrefix("__")
    }

    private static func isLetter(_ byte: UInt8) -> Bool { (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) }

    /// HELP text: backslash and line feed are escaped.
    package static func escapeHelp(_ text: String) -> String { escape(text, quotes: false) }

    /// Label values: backslash, double quote and line feed are escaped.
    package static func escapeLabelValue(_ text: String) -> String { escape(text, quotes: true) }

    private static func escape(_ text: String, quotes: Bool) -> String {
        var out = ""
        for character in text.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"" where quotes: out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// Go's `strconv.FormatFloat(v, 'g', -1, 64)` spelling as Prometheus writes it: integers without a fraction,
    /// `+Inf`, `-Inf`, `NaN`.
    package static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
