import HiveRedis

/// Where one enveloped subscriber is in one channel, and what it gets next: no gap and no duplicate, across a
/// reconnect (`since=`) and across live messages lost on the way (a Redis reconnect, a full inbox). Pure: the
/// worker performs the steps (`HiveServer+History.swift`); tested without I/O.
///
/// - Live, in order: each positioned message one past the last is delivered; one at or before it is a duplicate
///   and dropped; one further on means messages are missing, so they are fetched from history while later ones
///   wait in a buffer. A message of another epoch (the history was lost and started again) is delivered after a
///   `recovered:false`.
/// - Fetching: live messages wait in the buffer (at most `maxBuffered`, else the subscriber is closed: it cannot
///   keep up with what it missed). The page then delivers what follows the last position, or, when the epoch
///   changed or the next message is no longer in history, `recovered:false`; then the buffer goes through the
///   live rules again (which may fetch once more, at most `maxFetches` times in a row).
/// - Messages without a position (a plain `PUBLISH`) are delivered live as they come, or in order after the
///   buffer while fetching.
final class ChannelCursor {
    enum Step: Equatable {
        /// Deliver entry `index` of the live batch (its envelope is already encoded for the whole worker).
        case live(Int)
        /// Deliver this entry (from history or from the buffer): encoded for this subscriber alone.
        case entry(ChannelEntry)
        /// Send `{"channel":…,"recovered":false}`.
        case notRecovered
        /// Read the history after this offset, then call `fetched`.
        case fetch(after: UInt64)
        /// Close the subscriber: its buffer overflowed, or history cannot be read.
        case close(String)
    }

    static let maxFetches = 5

    /// The last position delivered; nil before the first positioned message (or after `recovered:false`).
    private(set) var position: HistoryPosition?
    private(set) var fetching = false
    private var buffer: [ChannelEntry] = []
    private var fetchesInARow = 0
    let maxBuffered: Int

    init(since: HistoryPosition?, maxBuffered: Int) {
        position = since
        self.maxBuffered = maxBuffered
    }

    /// A client that asked for `since`: the first step is the fetch; live messages wait until it is done.
    func start() -> [Step] {
        guard let position else { return [] }
        fetching = true
        fetchesInARow = 1
        return [.fetch(after: position.offset)]
    }

    /// A second look at history a moment after a recovery: a message published after the first read but before
    /// the host's Redis subscription to the channel existed (worker 0 subscribes within about 200 ms of the first
    /// subscriber) reached nobody live, and would otherwise only be noticed as a gap when the next one arrives.
    /// Nothing while a read is under way (that one covers it) or without a position.
    func catchUp() -> [Step] {
        guard !fetching, let position else { return [] }
        fetching = true
        return [.fetch(after: position.offset)]
    }

    /// Live messages, in order.
    func receive(_ entries: [ChannelEntry]) -> [Step] {
        var steps: [Step] = []
        for (index, entry) in entries.enumerated() { accept(entry, live: index, into: &steps) }
        return steps
    }

    /// The history read that the last `.fetch` asked for: a page, or why it failed.
    func fetched(_ result: Result<HistoryReader.Page, RedisError>) -> [Step] {
        guard fetching else { return [] }
        fetching = false
        var steps: [Step] = []
        switch result {
        case .failure(let error):
            buffer = []
            return [.close("history unavailable (\(error.message.prefix(60))); reconnect with the same since")]
        case .success(let page):
            let last = position?.offset ?? 0
            let sameEpoch = page.epoch != nil && page.epoch == position?.epoch
            if !sameEpoch || !page.entries.isEmpty && page.entries[0].offset != last + 1 || page.entries.isEmpty && page.last != last {
                steps.append(.notRecovered)
                position = nil
            } else {
                for entry in page.entries where entry.offset > last {
                    let position = HistoryPosition(epoch: page.epoch!, offset: entry.offset)
                    steps.append(.entry(ChannelEntry(redisPayload: entry.payload, position: position)))
                    self.position = position
                }
                if !page.entries.isEmpty { fetchesInARow = 0 }
            }
        }
        let waiting = buffer
        buffer = []
        for (index, entry) in waiting.enumerated() {
            if fetching {
                buffer.append(contentsOf: waiting[index...])
                break
            }
            accept(entry, live: nil, into: &steps)
        }
        return steps
    }

    /// `live`: the entry's index in the live batch; nil for one that waited in the buffer.
    private func accept(_ entry: ChannelEntry, live index: Int?, into steps: inout [Step]) {
        func deliver() { steps.append(index.map(Step.live) ?? .entry(entry)) }
        if fetching {
            guard buffer.count < maxBuffered else {
                fetching = false
                buffer = []
                steps.append(.close("recovery buffer full (\(maxBuffered) messages); reconnect with your last offset"))
                return
            }
            buffer.append(entry)
            return
        }
        guard let next = entry.position else { return deliver() }
        guard let current = position else {
            position = next
            return deliver()
        }
        if next.epoch != current.epoch {
            steps.append(.notRecovered)
            position = next
            return deliver()
        }
        if next.offset <= current.offset { return }
        if next.offset == current.offset + 1 {
            position = next
            fetchesInARow = 0
            return deliver()
        }
        guard fetchesInARow < Self.maxFetches else {
            // History keeps not having what is missing: say so and go on from here.
            steps.append(.notRecovered)
            position = next
            fetchesInARow = 0
            return deliver()
        }
        fetching = true
        fetchesInARow += 1
        buffer = [entry]
        steps.append(.fetch(after: current.offset))
    }
}
