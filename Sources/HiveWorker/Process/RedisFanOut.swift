import Atomics
import HiveIPC
import HiveRedis
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Worker 0's Redis subscription, read by the event loop once subscribed: the application's `redisMessages` hook
/// gets each batch read (default: broadcast it), in order. What the subscriber thread reads during a handshake is
/// handed to the loop without waiting for it: at most `maxPending` messages may wait, beyond that they are dropped
/// and counted (`redis.dropped`), because Redis disconnects a subscriber that falls behind and that would lose
/// everything.
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
        // A reload's old worker 0 still holds the subscription when this one starts (it keeps it after `retire`):
        // the two splice it at a marker (`RedisSplice`). Nobody holds it at the first start, or after a crash
        // (a stale state only costs the wait for our own marker).
        let predecessor = registry.redis(.state).load(ordering: .relaxed) == RedisState.subscribed.rawValue
        hasPredecessor = predecessor
        let splice = RedisSplice(
            channel: RedisSplice.channel(
                masterPID: Int32(truncatingIfNeeded: registry.header(.masterPID).load(ordering: .relaxed)),
                startedAt: registry.header(.startedAt).load(ordering: .relaxed)
            ),
            token: "\(getpid()):\(UInt64.random(in: 0...UInt64.max))", awaiting: predecessor
        )
        // The old side: once the batches before the successor's marker have run their hook (same queue, in order)
        // and their records to the other workers have left, the successor may deliver what follows.
        let onHandOff: @Sendable (String) -> Void = { marker in
            hive.eventLoop.execute {
                hooks.enqueue {
                    hive.outbox.whenDrained {
                        registry.redis(.spliceDone).store(RedisSplice.fingerprint(marker), ordering: .releasing)
                    }
                }
            }
        }
        @Sendable func handOn(_ batch: [RedisMessage]) {
            guard batch.contains(where: { $0.channel == userChannel }) else {
                return hooks.enqueue { await hive.hooks.redisMessages(batch, hive: hive) }
            }
            // A --pattern matching the user channel sees its messages too: never broadcast an envelope.
            hive.deliver(userEnvelopes: batch.filter { $0.channel == userChannel && $0.pattern == nil })
            let others = batch.filter { $0.channel != userChannel }
            guard !others.isEmpty else { return }
            hooks.enqueue { await hive.hooks.redisMessages(others, hive: hive) }
        }
        subscriber = RedisSubscriber(
            configuration: configuration, registry: registry, logger: hive.logger, eventLoop: hive.eventLoop,
            dynamicChannels: dynamic, splice: splice, onHandOff: onHandOff
        ) { batch in
            // Read by the event loop: on to the hook at once, no hop.
            if hive.eventLoop.inEventLoop { return handOn(batch) }
            // Messages that came with the handshake's replies, on the subscriber thread.
            let count = batch.count
            guard pending.loadThenWrappingIncrement(by: count, ordering: .relaxed) + count <= Self.maxPending else {
                pending.wrappingDecrement(by: count, ordering: .relaxed)
                registry.redis(.dropped).wrappingIncrement(by: UInt64(count), ordering: .relaxed)
                return
            }
            hive.eventLoop.execute {
                pending.wrappingDecrement(by: count, ordering: .relaxed)
                handOn(batch)
            }
        }
    }

    /// A reload's old worker 0 held the subscription when this one was made.
    let hasPredecessor: Bool

    func start() { subscriber.start() }

    /// Reload step 1: the replacement's splice marker may end this subscription (`RedisSplice`).
    func allowSuccessor() { subscriber.allowSuccessor() }

    /// See `RedisSubscriber.waitUntilLive`.
    func waitUntilLive(timeout: Double) -> Bool { subscriber.waitUntilLive(timeout: timeout) }

    /// Returns once the subscription is closed: nothing more will be delivered by this process.
    func stop() { subscriber.stop() }
}
