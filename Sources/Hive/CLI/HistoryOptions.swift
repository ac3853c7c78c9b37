import ArgumentParser
import HiveRedis

/// Channel history (Docs/REDIS.md, "Channel history"): off unless `--history-size` is given. `start` forwards
/// them to every worker (each publishes through the history script and reads history for its own clients), and
/// `hive publish` takes them too, to publish the way Hive does.
struct HistoryOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Messages each channel keeps in Redis for clients that reconnect with since= (0: no history).", valueName: "n"))
    var historySize = 0

    @Option(name: .customLong("history-ttl"), help: ArgumentHelp("Seconds a channel's history lives after its last publish (0: until trimmed by --history-size).", valueName: "seconds"))
    var historyTTL = 0

    @Option(name: .customLong("history"), help: ArgumentHelp(
        "History for the channels a glob matches: GLOB=SIZE[,TTL] (repeatable; the first match wins over --history-size; SIZE 0: none).",
        valueName: "glob=size,ttl"))
    var rules: [String] = []

    static let maxSize = 1_000_000

    func validate() throws {
        guard (0...Self.maxSize).contains(historySize) else {
            throw ValidationError("--history-size must be between 0 (off) and \(Self.maxSize) messages, got \(historySize)")
        }
        guard (0...(365 * 86_400)).contains(historyTTL) else {
            throw ValidationError("--history-ttl must be between 0 (no expiry) and 31536000 seconds, got \(historyTTL)")
        }
        for text in rules {
            guard let rule = ChannelHistory.Rules.Rule(parsing: text) else {
                throw ValidationError("--history \"\(text.prefix(80))\": expected GLOB=SIZE or GLOB=SIZE,TTL, like news*=100,600")
            }
            guard rule.policy.size <= Self.maxSize, rule.policy.ttl <= 365 * 86_400 else {
                throw ValidationError("--history \"\(text.prefix(80))\": at most \(Self.maxSize) messages and 31536000 seconds")
            }
        }
        if historySize == 0 && historyTTL != 0 {
            throw ValidationError("--history-ttl \(historyTTL) needs --history-size: give how many messages each channel keeps")
        }
    }

    /// nil when history is off (for every channel).
    var policy: ChannelHistory.Policy? {
        historySize > 0 ? ChannelHistory.Policy(size: historySize, ttl: historyTTL) : nil
    }

    /// nil when no channel keeps history.
    var historyRules: ChannelHistory.Rules? {
        let rules = ChannelHistory.Rules(global: policy, rules: rules.compactMap(ChannelHistory.Rules.Rule.init(parsing:)))
        return rules.isOn ? rules : nil
    }

    func workerArguments() -> [String] {
        (historySize > 0 ? ["--history-size", String(historySize), "--history-ttl", String(historyTTL)] : [])
            + rules.flatMap { ["--history", $0] }
    }
}
