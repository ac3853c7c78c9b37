#if canImport(Glibc)
import Glibc
#endif

/// Channel history in Redis (Docs/REDIS.md, "Channel history"): per channel, a meta hash with the channel's epoch
/// and last offset, and a capped stream of its last messages whose entry ids are `<offset>-0`. One Lua script
/// appends and publishes atomically, so every worker and every host sees the same position for a message.
package enum ChannelHistory {
    /// How much history a channel keeps: `size` messages, for `ttl` seconds after the last publish (0: no expiry).
    package struct Policy: Sendable, Equatable {
        package var size: Int
        package var ttl: Int

        package init(size: Int, ttl: Int) {
            self.size = size
            self.ttl = ttl
        }
    }

    /// Which channels keep history, and how much: the first `--history GLOB=SIZE[,TTL]` rule whose glob matches the
    /// channel name (`fnmatch`, as Redis' `PSUBSCRIBE` globs), else the global `--history-size`/`--history-ttl`.
    /// A rule of size 0 turns history off for what it matches.
    package struct Rules: Sendable, Equatable {
        package struct Rule: Sendable, Equatable {
            package var pattern: String
            package var policy: Policy

            package init(pattern: String, policy: Policy) {
                self.pattern = pattern
                self.policy = policy
            }

            /// `GLOB=SIZE` or `GLOB=SIZE,TTL`; nil for anything else.
            package init?(parsing text: String) {
                guard let equals = text.lastIndex(of: "=") else { return nil }
                let pattern = String(text[..<equals])
                let numbers = text[text.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false)
                guard !pattern.isEmpty, (1...2).contains(numbers.count), let size = Int(numbers[0]), size >= 0,
                    let ttl = numbers.count == 2 ? Int(numbers[1]) : 0, ttl >= 0
                else { return nil }
                self.init(pattern: pattern, policy: Policy(size: size, ttl: ttl))
            }
        }

        package var global: Policy?
        package var rules: [Rule]

        package init(global: Policy?, rules: [Rule] = []) {
            self.global = global
            self.rules = rules
        }

        /// nil: the channel keeps no history.
        package func policy(for channel: String) -> Policy? {
            let policy = rules.first { fnmatch($0.pattern, channel, 0) == 0 }?.policy ?? global
            return policy.flatMap { $0.size > 0 ? $0 : nil }
        }

        /// Whether any channel may keep history.
        package var isOn: Bool { (global?.size ?? 0) > 0 || rules.contains { $0.policy.size > 0 } }
    }

    /// The two keys of a channel. Both carry the Redis channel as a hash tag, so they live in one Cluster slot
    /// (a script may only touch keys of one slot).
    package struct Keys: Sendable, Equatable {
        package var meta: String
        package var stream: String

        /// - Parameter redisChannel: the channel's Redis channel, `<--channel-prefix>NAME`.
        package init(redisChannel: String) {
            meta = "__hive:meta:{\(redisChannel)}"
            stream = "__hive:history:{\(redisChannel)}"
        }
    }

    /// `EVALSHA sha 2 meta stream redisChannel payload size ttl` → `{epoch, offset, receivers}`.
    ///
    /// A missing meta hash (first publish, expired, or lost with Redis' data) makes a new epoch from Redis' clock
    /// and drops what may be left of the stream, so a position of the old history can never match the new one.
    /// Every step is a write that cannot fail on valid arguments, so the offset counter and the stream never
    /// disagree (Redis does not roll a script back). From 100 messages on the stream is trimmed approximately
    /// (`MAXLEN ~`: whole nodes of 100 entries, so it keeps up to about SIZE + 100): an exact trim made the script's
    /// `XADD` cost 4-6 µs of Redis CPU instead of 0.8 (64-byte messages, SIZE 1000, `INFO commandstats`).
    package static let script = """
        local epoch = redis.call('HGET', KEYS[1], 'epoch')
        if not epoch then
          local t = redis.call('TIME')
          epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
          redis.call('DEL', KEYS[2])
          redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
        end
        local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
        if tonumber(ARGV[3]) >= 100 then
          redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], offset .. '-0', 'd', ARGV[2])
        else
          redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], offset .. '-0', 'd', ARGV[2])
        end
        local ttl = tonumber(ARGV[4])
        if ttl > 0 then
          redis.call('EXPIRE', KEYS[1], ttl)
          redis.call('EXPIRE', KEYS[2], ttl)
        end
        local receivers = redis.call('PUBLISH', ARGV[1], '\\0hive\\1' .. epoch .. ':' .. offset .. '\\n' .. ARGV[2])
        return {epoch, offset, receivers}
        """

    /// The arguments after `EVALSHA sha` or `EVAL script`.
    package static func arguments(keys: Keys, redisChannel: String, payload: [UInt8], policy: Policy) -> [[UInt8]] {
        [Array("2".utf8), Array(keys.meta.utf8), Array(keys.stream.utf8), Array(redisChannel.utf8), payload,
         Array(String(policy.size).utf8), Array(String(policy.ttl).utf8)]
    }
}

/// A message's place in its channel's history: `EPOCH:OFFSET`, the same on every worker and every host.
package struct HistoryPosition: Sendable, Hashable, CustomStringConvertible {
    /// Names the history the offset counts in; a new epoch means the old history is gone.
    package var epoch: String
    package var offset: UInt64

    package init(epoch: String, offset: UInt64) {
        self.epoch = epoch
        self.offset = offset
    }

    package var description: String { "\(epoch):\(offset)" }

    /// The longest epoch accepted (the script makes 13 characters; other writers may make their own).
    package static let maxEpochLength = 32

    /// Letters and digits only: an epoch goes into JSON and URLs as it is.
    package static func isEpoch<S: Collection<UInt8>>(_ bytes: S) -> Bool {
        !bytes.isEmpty && bytes.count <= maxEpochLength
            && bytes.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }

    /// Parses `EPOCH:OFFSET` (a client's `since=`); nil for anything else.
    package init?(parsing text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), Self.isEpoch(bytes[..<colon]),
            let offset = Self.offset(bytes[(colon + 1)...])
        else { return nil }
        self.init(epoch: String(decoding: bytes[..<colon], as: UTF8.self), offset: offset)
    }

    /// 1 to 19 decimal digits, no sign, no leading zero (but "0").
    static func offset(_ digits: ArraySlice<UInt8>) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        guard digits.count == 1 || digits.first != 0x30 else { return nil }
        return digits.reduce(0) { $0 * 10 + UInt64($1 - 0x30) }
    }
}
