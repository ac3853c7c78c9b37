#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Everything that can go wrong while driving the browser; descriptions are whole sentences, as XCTest prints them
/// as the failure message.
enum HeadlessChromiumError: Error, CustomStringConvertible {
    /// No `chromium` executable: the test must fail (not skip), since `make deps` installs it.
    case notInstalled(searched: String)
    case launchFailed(path: String, underlying: String)
    /// The browser exited while something was awaited.
    case exited(status: Int32, waitingFor: String, log: String)
    case timedOut(seconds: TimeInterval, waitingFor: String, detail: String)
    /// A CDP command answered with `{"error": ...}`, or with something that is not a CDP reply.
    case protocolError(method: String, message: String)
    /// `Runtime.evaluate` reported an exception thrown by the page's JavaScript.
    case javaScriptException(expression: String, message: String)

    var description: String {
        switch self {
        case .notInstalled(let searched):
            return "Chromium is not installed (looked for \(searched)). Browser tests need it: run `make deps` "
                + "(APT_PACKAGES includes chromium) or `apt-get install -y chromium`, or set CHROMIUM_BINARY."
        case .launchFailed(let path, let underlying):
            return "could not launch \(path): \(underlying)"
        case .exited(let status, let what, let log):
            return "chromium exited with status \(status) while waiting for \(what); its output:\n"
                + Self.tail(of: log)
        case .timedOut(let seconds, let what, let detail):
            return "timed out after \(String(format: "%.1f", seconds)) s waiting for \(what)"
                + (detail.isEmpty ? "" : "; \(detail)")
        case .protocolError(let method, let message):
            return "DevTools command \(method) failed: \(message)"
        case .javaScriptException(let expression, let message):
            return "JavaScript exception in \(expression.prefix(200)): \(message)"
        }
    }

    static func tail(of log: String, lines: Int = 40) -> String {
        let all = log.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("dbus") }   // a container has no D-Bus; Chromium complains about it at length
        return all.suffix(lines).joined(separator: "\n")
    }
}

/// A headless Chromium driven over the Chrome DevTools Protocol (CDP), with no library: the DevTools HTTP endpoint is
/// read with `HTTPTestClient` and the page's DevTools WebSocket is spoken with `WebSocketTestClient`.
///
/// Launch: `chromium --headless=new --no-sandbox … --remote-debugging-port=0 --user-data-dir=<fresh temp dir>`;
/// the port the browser picked is read from `<user-data-dir>/DevToolsActivePort` (polled, never a fixed sleep), the
/// page target from `GET /json/list`. CDP messages carry an incrementing `id`; events (no `id`) that arrive while a
/// reply is awaited are kept for `navigate`, which waits for `Page.loadEventFired`. Every wait is bounded.
///
/// Only the pid started here is signalled (SIGTERM, then SIGKILL), plus, if any outlive it, that browser's own child
/// processes (found through /proc before the browser was stopped). `close()` also removes the temp dir.
final class HeadlessChromium {
    let executable: String
    /// Temp dir holding the profile (`profile/`) and the browser's stdout+stderr (`chromium.log`).
    let directory: URL
    let logURL: URL
    /// The DevTools HTTP/WebSocket port on 127.0.0.1.
    private(set) var devToolsPort = 0
    private(set) var pageTargetID = ""

    private let process = Process()
    private var cdp: WebSocketTestClient?
    private var nextID = 0
    /// Events received while waiting for replies, oldest first; bounded.
    private var events: [[String: Any]] = []
    private var closed = false

    /// Flags: `--no-sandbox` because tests run as root (Chromium refuses to start as root with its sandbox);
    /// `--disable-dev-shm-usage` because containers often have a tiny /dev/shm (Debian's wrapper tries to detect that
    /// but its `findmnt` test breaks when /dev/shm is listed twice); the rest keep the profile quiet and offline.
    static let flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--mute-audio",
        "--hide-scrollbars",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
    ]

    /// Starts the browser on `about:blank` and connects to its page target.
    /// - Parameters:
    ///   - windowSize: viewport of the page in CSS pixels (scale 1), hence the size of screenshots.
    ///   - timeout: budget for the whole launch (DevToolsActivePort, page target, WebSocket handshake), seconds.
    init(windowSize: (width: Int, height: Int) = (800, 640), timeout: TimeInterval = 15) throws {
        self.executable = try Self.findExecutable()
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hive-chromium-\(UUID().uuidString.prefix(8))", isDirectory: true)
        self.logURL = self.directory.appendingPathComponent("chromium.log")
        let profile = self.directory.appendingPathComponent("profile", isDirectory: true)
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)

        self.process.executableURL = URL(fileURLWithPath: self.executable)
        self.process.arguments = Self.flags + [
            "--window-size=\(windowSize.width),\(windowSize.height)",
            "--user-data-dir=\(profile.path)",
            "about:blank",
        ]
        self.process.currentDirectoryURL = self.directory
        guard FileManager.default.createFile(atPath: self.logURL.path, contents: nil) else {
            throw HeadlessChromiumError.launchFailed(path: self.executable, underlying: "cannot create \(self.logURL.path)")
        }
        let logHandle = try FileHandle(forWritingTo: self.logURL)
        defer { try? logHandle.close() }   // the child has its own copies
        self.process.standardOutput = logHandle
        self.process.standardError = logHandle
        self.process.standardInput = FileHandle.nullDevice
        do {
            try self.process.run()
        } catch {
            try? FileManager.default.removeItem(at: self.directory)
            throw HeadlessChromiumError.launchFailed(path: self.executable, underlying: "\(error)")
        }
        HiveProcess.note("started \(self.executable) headless as pid \(self.process.processIdentifier); "
            + "log \(self.logURL.path)")

        do {
            let deadline = TestDeadline(seconds: timeout)
            let (port, _) = try self.readDevToolsActivePort(in: profile, deadline: deadline)
            self.devToolsPort = port
            let (targetID, path) = try self.findPageTarget(deadline: deadline)
            self.pageTargetID = targetID
            self.cdp = try WebSocketTestClient(port: port, path: path, timeout: max(0.5, deadline.remaining))
            try self.send("Page.enable", timeout: max(0.5, deadline.remaining))
            // --window-size sizes the emulated window, browser UI included: the page would get ~140 px less height.
            // Pin the page's viewport itself, so screenshots show exactly windowSize.
            try self.send(
                "Emulation.setDeviceMetricsOverride",
                ["width": windowSize.width, "height": windowSize.height, "deviceScaleFactor": 1, "mobile": false],
                timeout: max(0.5, deadline.remaining))
            try self.send("Runtime.enable", timeout: max(0.5, deadline.remaining))
        } catch {
            self.close()
            throw error
        }
    }

    deinit {
        self.close()
    }

    /// `$CHROMIUM_BINARY`, else the first `chromium` on PATH.
    static func findExecutable() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let override = environment["CHROMIUM_BINARY"], !override.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: override) else {
                throw HeadlessChromiumError.notInstalled(searched: "CHROMIUM_BINARY=\(override)")
            }
            return override
        }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/chromium"
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        throw HeadlessChromiumError.notInstalled(searched: "chromium on PATH=\(path)")
    }

    // MARK: Page

    /// Navigates the page and returns once its `load` event fired.
    func navigate(to url: String, timeout: TimeInterval = 10) throws {
        let deadline = TestDeadline(seconds: timeout)
        self.events.removeAll()
        let result = try self.send("Page.navigate", ["url": url], timeout: timeout)
        if let errorText = result["errorText"] as? String, !errorText.isEmpty {
            throw HeadlessChromiumError.protocolError(method: "Page.navigate", message: "\(url): \(errorText)")
        }
        try self.waitForEvent("Page.loadEventFired", deadline: deadline, waitingFor: "the load event of \(url)")
    }

    /// Evaluates `expression` in the page (`Runtime.evaluate`, `returnByValue`, `awaitPromise`) and returns its value
    /// as JSONSerialization gives it (String, NSNumber/Bool, [Any], [String: Any]), or nil for undefined and null.
    /// Throws `javaScriptException` if it throws.
    @discardableResult
    func evaluate(_ expression: String, timeout: TimeInterval = 5) throws -> Any? {
        let result = try self.send(
            "Runtime.evaluate",
            ["expression": expression, "returnByValue": true, "awaitPromise": true],
            timeout: timeout
        )
        if let details = result["exceptionDetails"] as? [String: Any] {
            let exception = details["exception"] as? [String: Any]
            let message = exception?["description"] as? String ?? details["text"] as? String ?? "\(details)"
            throw HeadlessChromiumError.javaScriptException(expression: expression, message: message)
        }
        let value = (result["result"] as? [String: Any])?["value"]
        return value is NSNull ? nil : value
    }

    /// Polls `jsCondition` every 50 ms until it is truthy. Exceptions count as "not yet" (the last one is reported
    /// on timeout, with the last value seen).
    func waitFor(_ jsCondition: String, timeout: TimeInterval = 5) throws {
        let deadline = TestDeadline(seconds: timeout)
        var last = "nothing evaluated yet"
        while true {
            do {
                let value = try self.evaluate("!!(\(jsCondition))", timeout: max(0.2, deadline.remaining))
                if value as? Bool == true {
                    return
                }
                last = "last value \(value.map { "\($0)" } ?? "undefined")"
            } catch let error as HeadlessChromiumError {
                if case .javaScriptException = error {
                    last = "last error: \(error)"
                } else {
                    throw error
                }
            }
            if deadline.remaining <= 0 {
                throw HeadlessChromiumError.timedOut(
                    seconds: timeout, waitingFor: "the page condition \(jsCondition)", detail: last)
            }
            usleep(50_000)
        }
    }

    /// Captures the viewport as PNG (`Page.captureScreenshot`) and writes it to `path`, creating folders.
    /// Returns the number of bytes written.
    @discardableResult
    func screenshot(to path: String, timeout: TimeInterval = 10) throws -> Int {
        let result = try self.send("Page.captureScreenshot", ["format": "png"], timeout: timeout)
        guard let base64 = result["data"] as? String, let data = Data(base64Encoded: base64) else {
            throw HeadlessChromiumError.protocolError(method: "Page.captureScreenshot", message: "no base64 data")
        }
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url, options: .atomic)
        return data.count
    }

    /// The browser's stdout and stderr so far (errors quote its tail, minus the D-Bus noise).
    func log() -> String {
        guard let data = FileManager.default.contents(atPath: self.logURL.path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    var pid: Int32 { self.process.processIdentifier }

    // MARK: CDP

    /// Sends one CDP command and returns its `result`, skipping (and keeping) events until the reply with its id.
    @discardableResult
    func send(_ method: String, _ params: [String: Any] = [:], timeout: TimeInterval = 5) throws -> [String: Any] {
        guard let cdp = self.cdp else {
            throw HeadlessChromiumError.protocolError(method: method, message: "not connected (closed?)")
        }
        self.nextID += 1
        let id = self.nextID
        let data = try JSONSerialization.data(withJSONObject: ["id": id, "method": method, "params": params])
        try cdp.sendText(String(decoding: data, as: UTF8.self))
        let deadline = TestDeadline(seconds: timeout)
        while true {
            let message = try self.receive(deadline: deadline, waitingFor: "the reply to \(method) (id \(id))")
            guard let replyID = (message["id"] as? NSNumber)?.intValue else {
                self.keep(event: message)
                continue
            }
            guard replyID == id else { continue }   // a reply to an earlier command that timed out
            if let error = message["error"] as? [String: Any] {
                let text = error["message"] as? String ?? "\(error)"
                let data = error["data"].map { " (\($0))" } ?? ""
                throw HeadlessChromiumError.protocolError(method: method, message: text + data)
            }
            return message["result"] as? [String: Any] ?? [:]
        }
    }

    private func waitForEvent(_ method: String, deadline: TestDeadline, waitingFor what: String) throws {
        if let index = self.events.firstIndex(where: { $0["method"] as? String == method }) {
            self.events.removeSubrange(...index)
            return
        }
        self.events.removeAll()
        while true {
            let message = try self.receive(deadline: deadline, waitingFor: what)
            if message["id"] == nil, message["method"] as? String == method {
                return
            }
        }
    }

    private func keep(event: [String: Any]) {
        self.events.append(event)
        if self.events.count > 500 {
            self.events.removeFirst(self.events.count - 500)
        }
    }

    /// The next CDP message as a JSON object, within `deadline`; checks the browser is alive when it times out.
    private func receive(deadline: TestDeadline, waitingFor what: String) throws -> [String: Any] {
        guard let cdp = self.cdp else {
            throw HeadlessChromiumError.protocolError(method: what, message: "not connected (closed?)")
        }
        while true {
            guard self.process.isRunning else {
                throw HeadlessChromiumError.exited(status: self.process.terminationStatus, waitingFor: what, log: self.log())
            }
            guard deadline.remaining > 0 else {
                throw HeadlessChromiumError.timedOut(seconds: deadline.seconds, waitingFor: what, detail: "")
            }
            let message: WebSocketTestMessage
            do {
                message = try cdp.receiveMessage(timeout: min(deadline.remaining, 1))
            } catch TestClientError.timedOut {
                continue   // re-check liveness and the overall deadline
            }
            switch message {
            case .text(let text):
                guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                    throw HeadlessChromiumError.protocolError(method: what, message: "not a JSON object: \(text.prefix(200))")
                }
                return object
            case .close(let code, let reason):
                throw HeadlessChromiumError.protocolError(
                    method: what, message: "DevTools WebSocket closed (\(code.map(String.init) ?? "no code")) \(reason)")
            case .binary, .ping, .pong:
                continue
            }
        }
    }

    // MARK: Launch

    /// Polls `<profile>/DevToolsActivePort` ("<port>\n/devtools/browser/<uuid>") every 20 ms.
    private func readDevToolsActivePort(in profile: URL, deadline: TestDeadline) throws -> (Int, String) {
        let file = profile.appendingPathComponent("DevToolsActivePort").path
        while true {
            let running = self.process.isRunning
            if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                let lines = text.split(whereSeparator: \.isNewline)
                if lines.count >= 2, let port = Int(lines[0]), (1...65535).contains(port),
                    lines[1].hasPrefix("/devtools/browser/"), lines[1].count >= "/devtools/browser/".count + 36
                {
                    return (port, String(lines[1]))
                }
            }
            if !running {
                throw HeadlessChromiumError.exited(
                    status: self.process.terminationStatus, waitingFor: "\(file) to be written", log: self.log())
            }
            if deadline.remaining <= 0 {
                throw HeadlessChromiumError.timedOut(
                    seconds: deadline.seconds, waitingFor: "\(file) to be written",
                    detail: "chromium output:\n" + HeadlessChromiumError.tail(of: self.log()))
            }
            usleep(20_000)
        }
    }

    /// `GET /json/list` until a target of type "page" shows up; returns its id and DevTools WebSocket path.
    private func findPageTarget(deadline: TestDeadline) throws -> (String, String) {
        var last = "no answer yet"
        while true {
            do {
                let http = try HTTPTestClient(port: self.devToolsPort, timeout: max(0.2, min(deadline.remaining, 2)))
                defer { http.close() }
                let response = try http.request(path: "/json/list")
                last = response.description
                if response.status == 200,
                    let targets = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]],
                    let page = targets.first(where: { $0["type"] as? String == "page" }),
                    let id = page["id"] as? String,
                    let url = page["webSocketDebuggerUrl"] as? String,
                    let path = Self.path(ofWebSocketURL: url)
                {
                    return (id, path)
                }
            } catch {
                last = "\(error)"
            }
            guard self.process.isRunning else {
                throw HeadlessChromiumError.exited(
                    status: self.process.terminationStatus, waitingFor: "a page target", log: self.log())
            }
            if deadline.remaining <= 0 {
                throw HeadlessChromiumError.timedOut(
                    seconds: deadline.seconds, waitingFor: "a page target at http://127.0.0.1:\(self.devToolsPort)/json/list",
                    detail: last)
            }
            usleep(20_000)
        }
    }

    /// "ws://127.0.0.1:1234/devtools/page/ID" -> "/devtools/page/ID".
    static func path(ofWebSocketURL url: String) -> String? {
        guard url.hasPrefix("ws://") else { return nil }
        let rest = url.dropFirst("ws://".count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        return String(rest[slash...])
    }

    // MARK: Shutdown

    /// Stops the browser started here (SIGTERM, up to 5 s, then SIGKILL), then any of its child processes that
    /// outlived it, and removes the temp dir. Idempotent; never throws.
    func close() {
        guard !self.closed else { return }
        self.closed = true
        self.cdp?.close()
        self.cdp = nil
        let pid = self.process.processIdentifier
        if pid > 0 {
            let children = Self.descendants(of: pid)
            if self.process.isRunning {
                _ = kill(pid, SIGTERM)
                if !Self.waitForExit(self.process, timeout: 5) {
                    HiveProcess.note("chromium pid \(pid) still running 5 s after SIGTERM; sending SIGKILL")
                    _ = kill(pid, SIGKILL)
                    _ = Self.waitForExit(self.process, timeout: 5)
                }
            }
            // Chromium takes its zygotes, renderers and utility processes down with it; this only catches strays.
            let strays = HiveProcess.waitUntilGone(children, timeout: 3)
            for child in strays where Self.isChromium(pid: child) {
                HiveProcess.note("chromium child pid \(child) outlived the browser; sending SIGKILL")
                _ = kill(child, SIGKILL)
            }
        }
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Every process below `pid`, from the ppid field of /proc/<n>/stat.
    private static func descendants(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var parent: [Int32: Int32] = [:]
        for entry in entries {
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // "pid (comm) S ppid …": comm may contain spaces and parentheses.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let ppid = Int32(fields[1]) {
                parent[child] = ppid
            }
        }
        var result: [Int32] = []
        var frontier: Set<Int32> = [pid]
        while !frontier.isEmpty {
            let next = parent.filter { frontier.contains($0.value) }.map(\.key)
            result += next
            frontier = Set(next)
        }
        return result
    }

    /// Guards the stray cleanup against pid reuse.
    private static func isChromium(pid: Int32) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data, as: UTF8.self).contains("chromium")
    }

    private static func waitForExit(_ process: Process, timeout: TimeInterval) -> Bool {
        let deadline = TestDeadline(seconds: timeout)
        while process.isRunning {
            if deadline.remaining <= 0 { return false }
            usleep(10_000)
        }
        return true
    }
}

@available(*, unavailable)
extension HeadlessChromium: Sendable {}   // one owner: CDP replies are read in order by one test thread
