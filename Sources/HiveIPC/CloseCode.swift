/// WebSocket close codes a server may put on the wire (RFC 6455 7.4): 1000-1003, 1007-1014 (1012-1014 were
/// registered with IANA after the RFC) and 3000-4999 (libraries and applications). 1004 is reserved; 1005, 1006 and
/// 1015 only report what happened locally and must never be sent; below 1000 and 1016-2999 are not assigned. A
/// frame encoder sends a bad code as a close without a code, so an operator's typo would pass silently: the CLI and
/// the master refuse it instead.
package enum CloseCode {
    package static func serverMaySend(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    /// Why `code` cannot be sent, and which codes can, as one sentence; nil when it can be sent.
    package static func refusal(_ code: Int) -> String? {
        if let code = UInt16(exactly: code), serverMaySend(code) { return nil }
        let why =
            switch code {
            case 1004: "is reserved"
            case 1005, 1006, 1015: "only reports a close locally and must never be sent"
            default: "is not a close code a server may send"
            }
        return "close code \(code) \(why) (RFC 6455 7.4); use 1000 (normal), 1001 (going away), 1008 (policy), "
            + "another of 1000-1003 and 1007-1014, or an application code 3000-4999"
    }
}
