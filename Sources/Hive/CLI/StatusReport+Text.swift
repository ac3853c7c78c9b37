import Foundation
import HiveIPC

// The human form of `hive status`, modeled on Workerman's `php start.php status`: a global block, then one row
// per worker and a summary row.
extension StatusReport {
    func text(previous: StatusReport? = nil) -> String {
        var lines: [String] = []
        let rule = String(repeating: "-", count: 40)
        lines.append("\(rule) HIVE STATUS \(rule)")
        lines.append("Hive version: \(master.version)   master pid: \(master.pid)   listen: http://\(master.listen)")
        let started = Date(timeIntervalSince1970: Double(master.startedAt) / 1e9)
        lines.append("start time: \(Self.timestamp(started))   uptime: \(Self.duration(master.uptimeSeconds))   "
            + "load average: \(master.loadAverage.map { String(format: "%.2f", $0) }.joined(separator: ", "))")
        lines.append("dispatch: \(master.dispatch)   workers: \(workers.count)   connections: \(http + websocket) "
            + "(http \(http), websocket \(websocket))   channels: \(channels)   accepted: \(master.accepted)   refused: "
            + "\(master.refusedFull) full, \(master.refusedBusy) busy   accept errors: \(master.acceptErrors)"
            + (master.reloading ? "   RELOADING" : ""))
        let exits = workers.filter { $0.restarts > 0 }.map { "worker \($0.id): \($0.restarts) restarts, last \($0.lastExit ?? "?")" }
        lines.append("exits: " + (exits.isEmpty ? "none" : exits.joined(separator: "; ")))
        lines.append("redis: " + redisLine())
        if let history { lines.append("history: " + historyLine(history)) }
        lines.append("\(rule) WORKERS \(rule)----")
        var header = ["id", "pid", "state", "uptime", "memory", "http", "websocket", "requests", "msg in", "msg out",
                      "push fail", "restarts"]
        let elapsed = previous.map { takenAt.timeIntervalSince($0.takenAt) } ?? 0
        if elapsed > 0 { header += ["req/s", "in/s", "out/s"] }
        var rows: [[String]] = [header]
        for worker in workers {
            var row = [
                String(worker.id), String(worker.pid), worker.state.description, Self.duration(worker.uptimeSeconds),
                Self.bytes(worker.rssBytes), String(worker.http), String(worker.websocket), String(worker.requests),
                String(worker.messagesIn), String(worker.messagesOut), String(worker.pushesFailed), String(worker.restarts),
            ]
            if elapsed > 0, let before = previous?.workers.first(where: { $0.id == worker.id }) {
                row += [worker.requests &- before.requests, worker.messagesIn &- before.messagesIn,
                        worker.messagesOut &- before.messagesOut].map { String(format: "%.0f", Double($0) / elapsed) }
            }
            rows.append(row)
        }
        var total = [
            "total", "", "", "", Self.bytes(workers.compactMap(\.rssBytes).reduce(0, +)), String(http), String(websocket),
            String(workers.reduce(0) { $0 + $1.requests }), String(workers.reduce(0) { $0 + $1.messagesIn }),
            String(workers.reduce(0) { $0 + $1.messagesOut }), String(workers.reduce(0) { $0 + $1.pushesFailed }),
            String(workers.reduce(0) { $0 + $1.restarts }),
        ]
        if elapsed > 0 { total += ["", "", ""] }
        rows.append(total)
        lines += Self.table(rows)
        return lines.joined(separator: "\n")
    }

    private func redisLine() -> String {
        guard let redis else { return "off (--redis none)" }
        var parts = ["\(redis.state) \(redis.address)"]
        if !redis.channels.isEmpty { parts.append("channels \(redis.channels.joined(separator: ", "))") }
        if !redis.patterns.isEmpty { parts.append("patterns \(redis.patterns.joined(separator: ", "))") }
        parts.append("messages \(redis.messages) (\(Self.bytes(Int(redis.bytes))))")
        parts.append("reconnects \(redis.reconnects)")
        if redis.dropped > 0 { parts.append("dropped \(redis.dropped)") }
        if redis.oversized > 0 { parts.append("oversized \(redis.oversized) (over --max-redis-message)") }
        if redis.lastMessageAt > 0 {
            parts.append("last message \(Self.duration(Double(Clock.wallNanoseconds() &- redis.lastMessageAt) / 1e9)) ago")
        }
        if !redis.lastError.isEmpty && redis.state != .subscribed { parts.append("last error: \(redis.lastError)") }
        return parts.joined(separator: " · ")
    }

    /// Totals only: `hive channels` has the per-channel figures.
    private func historyLine(_ history: History) -> String {
        if let problem = history.problem { return problem }
        return "\(history.kept) of \(channels) channels with history · \(history.messages) messages kept (per channel: hive channels)"
    }

    static func table(_ rows: [[String]]) -> [String] {
        let widths = rows.reduce(into: [Int](repeating: 0, count: rows.first?.count ?? 0)) { widths, row in
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        let (days, hours, minutes, secs) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60)
        if days > 0 { return "\(days)d \(hours)h \(minutes)m" }
        if hours > 0 { return "\(hours)h \(minutes)m \(secs)s" }
        if minutes > 0 { return "\(minutes)m \(secs)s" }
        return "\(secs)s"
    }

    static func bytes(_ value: Int?) -> String {
        guard let value else { return "-" }
        if value >= 1 << 30 { return String(format: "%.1f GiB", Double(value) / Double(1 << 30)) }
        if value >= 1 << 20 { return String(format: "%.1f MiB", Double(value) / Double(1 << 20)) }
        if value >= 1 << 10 { return String(format: "%.1f KiB", Double(value) / Double(1 << 10)) }
        return "\(value) B"
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: date)
    }
}
