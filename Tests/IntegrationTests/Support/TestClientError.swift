#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Every failure of the integration-test support code: the process launcher and the HTTP / WebSocket clients.
///
/// Descriptions are full sentences because XCTest prints them as the whole failure message: a test that dies in
/// `try client.readResponse()` should say what was awaited, for how long, and what arrived instead.
enum TestClientError: Error, CustomStringConvertible, Sendable {
    /// A system call failed. `call` is the function (`connect()`), `doing` the context, `errno` the raw error.
    case syscall(call: String, doing: String, errno: Int32)
    /// Nothing (or not enough) arrived before the deadline.
    case timedOut(seconds: TimeInterval, waitingFor: String)
    /// The peer closed (read returned 0) or reset the connection while a reply was still expected.
    case connectionClosed(waitingFor: String, bufferedBytes: [UInt8])
    /// The bytes received are not a valid HTTP response.
    case malformedResponse(reason: String, bufferedBytes: [UInt8])
    /// The server answered the WebSocket upgrade with something other than a valid 101.
    case upgradeRejected(reason: String, response: HTTPTestResponse)
    /// A frame from the server breaks RFC 6455 (only reported by the message-level API).
    case protocolViolation(String)
    /// No `hive` executable where it was looked for.
    case binaryNotFound(path: String)
    /// `Process.run()` failed.
    case launchFailed(path: String, underlying: String)
    /// The server process exited before the awaited log line appeared.
    case processExited(status: Int32, waitingFor: String, logPath: String, log: String)
    /// The awaited log line did not appear in time.
    case logTimeout(seconds: TimeInterval, waitingFor: String, logPath: String, log: String)
    /// A HiveProcess method was used in the wrong order, e.g. `start()` twice.
    case misuse(String)

    var description: String {
        switch self {
        case .syscall(let call, let doing, let code):
            return "\(call) failed while \(doing): \(String(cString: strerror(code))) (errno \(code))"
        case .timedOut(let seconds, let what):
            return "timed out after \(Self.format(seconds)) s waiting for \(what)"
        case .connectionClosed(let what, let buffered):
            return "connection closed by peer while waiting for \(what)" + Self.describe(buffered: buffered)
        case .malformedResponse(let reason, let buffered):
            return "malformed HTTP response: \(reason)" + Self.describe(buffered: buffered)
        case .upgradeRejected(let reason, let response):
            return "WebSocket upgrade rejected: \(reason); response was \(response)"
        case .protocolViolation(let message):
            return "WebSocket protocol violation by server: \(message)"
        case .binaryNotFound(let path):
            return "no hive executable at \(path): build it first (`swift build --product hive`) "
                + "or set HIVE_BINARY to its path"
        case .launchFailed(let path, let underlying):
            return "could not launch \(path): \(underlying)"
        case .processExited(let status, let what, let logPath, let log):
            return "hive exited with status \(status) while waiting for \(what); log \(logPath):\n"
                + Self.tail(of: log)
        case .logTimeout(let seconds, let what, let logPath, let log):
            return "timed out after \(Self.format(seconds)) s waiting for \(what); log \(logPath):\n"
                + Self.tail(of: log)
        case .misuse(let message):
            return message
        }
    }

    private static func format(_ seconds: TimeInterval) -> String {
        String(format: "%.1f", seconds)
    }

    /// Shows what was buffered when things went wrong; printable bytes as text, since HTTP heads are what we
    /// usually get, truncated so a large body cannot bury the message.
    private static func describe(buffered: [UInt8]) -> String {
        guard !buffered.isEmpty else { return " (nothing buffered)" }
        let limit = 512
        let shown = buffered.prefix(limit).map { byte -> String in
            switch byte {
            case 0x0D: return "\\r"
            case 0x0A: return "\\n"
            case 0x20..<0x7F: return String(UnicodeScalar(byte))
            default: return String(format: "\\x%02x", byte)
            }
        }.joined()
        let more = buffered.count > limit ? "… (\(buffered.count - limit) more bytes)" : ""
        return "; \(buffered.count) bytes buffered: \"\(shown)\"\(more)"
    }

    /// The last lines of a server log: the cause of a failed start is nearly always at the end, and a whole log
    /// would push the test name off the screen.
    private static func tail(of log: String, lines: Int = 200) -> String {
        let all = log.split(separator: "\n", omittingEmptySubsequences: false)
        guard all.count > lines else { return log }
        return "… (\(all.count - lines) earlier lines omitted)\n" + all.suffix(lines).joined(separator: "\n")
    }
}
