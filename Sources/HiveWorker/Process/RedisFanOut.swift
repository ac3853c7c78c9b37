import Atomics
import HiveIPC
import HiveRedis
import Logging

/// Worker 0's Redis subscription, handed to the event loop in batches: the application's `redisMessages` hook gets
/// each batch (default: broadcast it). The subscriber thread never waits for the loop: at most `maxPending`
/// messages may wait for it, beyond that they are dropped and counted (`redis.dropped`), because Redis disconnects
/// a subscriber that falls behind and that would lose everything.
final class RedisFanOut: Sendable {
    static let maxPending = 100_000

    private let subscriber: RedisSubscriber
    private let pending = ManagedAtomic<Int>(0)
    /// The hook runs for one batch at a time, in order, even when it suspends.
    private let hooks: HookQueue

    init(configuration: RedisSubscriber.Configuration, hive: HiveServer) {
        let hooks = HookQueue(executor: hive.executor)
        self.hooks = hooks
        let pending = self.pending
        let registry = hive.registry
        let prefix = configuration.channelPrefix
        // Messages for users (`send(toUser:)` of any host): always subscribed, never seen by the hook.
        let userChannel = UserEnvelope.channel(prefix: prefix)
        // The channels with subscribers on any worker, from the registry: worker 0 never asks the others.
        let dynamic: @Sendable () -> Set<String> = {
            Set(registry.channelSnapshots(freeUnused: true).map { prefix + $0.name }).union([userChannel])
        }
        subscriber = RedisSubscriber(
            configuration: configuration, registry: registry, logger: hive.logger, dynamicChannels: dynamic
        ) { batch in
            let count = batch.count
            guard pending.loadThenWrappingIncrement(by: count, ordering: .relaxed) + count <= Self.maxPending else {
                pending.wrappingDecrement(by: count, ordering: .relaxed)
                registry.redis(.dropped).wrappingIncrement(by: UInt64(count), ordering: .relaxed)
                return
            }
            hive.eventLoop.execute {
                pending.wrappingDecrement(by: count, ordering: .relaxed)
                guard batch.contains(where: { $0.channel == userChannel }) else {
                    return hooks.enqueue { await hive.hooks.redisMessages(batch, hive: hive) }
                }
                // A --pattern matching the user channel sees its messages too: never broadcast an envelope.
                hive.deliver(userEnvelopes: batch.filter { $0.channel == userChannel && $0.pattern == nil })
                let others = batch.filter { $0.channel != userChannel }
                guard !others.isEmpty else { return }
                hooks.enqueue { await hive.hooks.redisMessages(others, hive: hive) }
            }
        }
    }

    func start() { subscriber.start() }

    /// Returns once the subscription is closed: nothing more will be delivered by this process.
    func stop() { subscriber.stop() }
}
