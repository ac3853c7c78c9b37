import XCTest

@testable import HiveIPC

final class HiveMetricsTests: XCTestCase {
    let remote = RemoteAddress(family: .ipv4, bytes: (0x0100_007F, 0), port: 5555)

    private func samples(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            values[String(parts[0])] = String(parts[1])
        }
        return values
    }

    private func facts(redis: String? = nil) -> HiveMetrics.Facts {
        .init(version: "1.2.3", redisAddress: redis, redisChannels: 2, redisPatterns: 1)
    }

    func testRender_showsTheRegistryCounters_perWorker() throws {
        let registry = SharedRegistry.heap(capacity: 8, workerCount: 2)
        registry.header(.accepted).store(7, ordering: .relaxed)
        registry.header(.refusedBusy).store(2, ordering: .relaxed)
        registry.increment(worker: 1, .messagesOut, by: 5)
        registry.worker(0, .state).store(WorkerState.running.rawValue, ordering: .relaxed)
        registry.worker(1, .state).store(WorkerState.restarting.rawValue, ordering: .relaxed)
        registry.worker(1, .restarts).store(3, ordering: .relaxed)
        let id = try XCTUnwrap(registry.reserve(worker: 1, remote: remote))
        XCTAssertTrue(registry.activate(id))
        registry.setProtocol(id, .websocket)
        var metrics = HiveMetrics(facts: facts())
        let page = samples(metrics.render(RegistrySnapshot(registry), liveBytes: registry.liveBytes(), reloading: true))
        XCTAssertEqual(page["hive_build_info{version=\"1.2.3\"}"], "1")
        XCTAssertEqual(page["hive_connections_accepted_total"], "7")
        XCTAssertEqual(page["hive_connections_refused_total{reason=\"busy\"}"], "2")
        XCTAssertEqual(page["hive_connections{worker=\"1\",protocol=\"websocket\"}"], "1")
        XCTAssertEqual(page["hive_connections{worker=\"0\",protocol=\"websocket\"}"], "0")
        XCTAssertEqual(page["hive_websocket_messages_sent_total{worker=\"1\"}"], "5")
        XCTAssertEqual(page["hive_worker_state{worker=\"0\",state=\"running\"}"], "1")
        XCTAssertEqual(page["hive_worker_state{worker=\"1\",state=\"running\"}"], "0")
        XCTAssertEqual(page["hive_worker_state{worker=\"1\",state=\"restarting\"}"], "1")
        XCTAssertEqual(page["hive_worker_restarts_total{worker=\"1\"}"], "3")
        XCTAssertEqual(page["hive_master_reloading"], "1")
        XCTAssertNil(page["hive_redis_messages_received_total"], "no Redis series with --redis none")
    }

    func testBytes_countLiveAndFinishedConnections_andNeverGoDown() throws {
        let registry = SharedRegistry.heap(capacity: 8, workerCount: 1)
        let first = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(first))
        registry.add(100, to: .bytesIn, of: first)
        registry.add(40, to: .bytesOut, of: first)
        let second = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(second))
        registry.add(1, to: .bytesIn, of: second)
        var metrics = HiveMetrics(facts: facts())
        func render() -> [String: String] {
            samples(metrics.render(RegistrySnapshot(registry), liveBytes: registry.liveBytes(), reloading: false))
        }
        XCTAssertEqual(render()["hive_received_bytes_total{worker=\"0\"}"], "101")
        registry.free(first)
        XCTAssertEqual(render()["hive_received_bytes_total{worker=\"0\"}"], "101", "a finished connection still counts")
        XCTAssertEqual(render()["hive_sent_bytes_total{worker=\"0\"}"], "40")
        // A scrape between the slot's release and the closed total's update sees less: the page keeps the last value.
        registry.worker(0, .closedBytesIn).store(0, ordering: .relaxed)
        XCTAssertEqual(render()["hive_received_bytes_total{worker=\"0\"}"], "101")
    }

    func testRedis_seriesCarryTheAddressWithoutPassword_andOneStateAtATime() {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1)
        registry.redis(.state).store(RedisState.subscribed.rawValue, ordering: .relaxed)
        registry.redis(.oversized).store(4, ordering: .relaxed)
        var metrics = HiveMetrics(facts: facts(redis: "redis://127.0.0.1:6379"))
        let text = metrics.render(RegistrySnapshot(registry), liveBytes: registry.liveBytes(), reloading: false)
        let page = samples(text)
        XCTAssertEqual(page["hive_redis_info{address=\"redis://127.0.0.1:6379\"}"], "1")
        XCTAssertEqual(page["hive_redis_state{state=\"subscribed\"}"], "1")
        XCTAssertEqual(page["hive_redis_state{state=\"connecting\"}"], "0")
        XCTAssertEqual(page["hive_redis_messages_oversized_total"], "4")
        XCTAssertEqual(page["hive_redis_subscriptions{kind=\"channel\"}"], "2")
    }

    func testEveryFamily_hasHelpAndType_countersEndInTotal() {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 2)
        var metrics = HiveMetrics(facts: facts(redis: "redis://127.0.0.1:6379"))
        let lines = metrics.render(RegistrySnapshot(registry), liveBytes: registry.liveBytes(), reloading: false)
            .split(separator: "\n")
        var described: [String: String] = [:]
        for line in lines where line.hasPrefix("# TYPE ") {
            let words = line.split(separator: " ")
            described[String(words[2])] = String(words[3])
        }
        for line in lines where !line.hasPrefix("#") {
            let name = String(line.prefix { $0 != "{" && $0 != " " })
            let family = ["_bucket", "_sum", "_count"].lazy.filter { name.hasSuffix($0) }
                .map { String(name.dropLast($0.count)) }.first { described[$0] == "histogram" } ?? name
            XCTAssertNotNil(described[family], "\(name) has no TYPE line")
            XCTAssertTrue(name.hasPrefix("hive_"), name)
        }
        for (name, type) in described where type == "counter" { XCTAssertTrue(name.hasSuffix("_total"), name) }
        XCTAssertEqual(Set(lines.filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] }).count,
                       described.count)
    }

    func testBroadcastLatency_fillsItsBucket_andRendersCumulativeBucketsSumAndCount() {
        XCTAssertLessThanOrEqual(SharedRegistry.WorkerField.broadcastLatencyBuckets.rawValue + BroadcastLatency.bounds.count,
                                 SharedRegistry.WorkerField.words, "the histogram fits in a worker record")
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 2)
        for nanoseconds: UInt64 in [50_000, 100_000, 700_000, 700_000, 2_000_000_000] {
            registry.observeBroadcastLatency(worker: 1, nanoseconds: nanoseconds)
        }
        let latency = registry.broadcastLatency(worker: 1)
        XCTAssertEqual(latency.buckets, [2, 0, 2, 0, 0, 0, 0, 0], "<= 0.1 ms twice, <= 1 ms twice, 2 s in none")
        XCTAssertEqual(latency.count, 5)
        XCTAssertEqual(registry.broadcastLatency(worker: 0).count, 0, "another worker's histogram is untouched")
        var metrics = HiveMetrics(facts: facts())
        let page = samples(metrics.render(RegistrySnapshot(registry), liveBytes: registry.liveBytes(), reloading: false))
        let worker = "worker=\"1\""
        XCTAssertEqual(page["hive_broadcast_write_seconds_bucket{\(worker),le=\"0.0001\"}"], "2")
        XCTAssertEqual(page["hive_broadcast_write_seconds_bucket{\(worker),le=\"0.0005\"}"], "2")
        XCTAssertEqual(page["hive_broadcast_write_seconds_bucket{\(worker),le=\"0.001\"}"], "4")
        XCTAssertEqual(page["hive_broadcast_write_seconds_bucket{\(worker),le=\"1\"}"], "4")
        XCTAssertEqual(page["hive_broadcast_write_seconds_bucket{\(worker),le=\"+Inf\"}"], "5")
        XCTAssertEqual(page["hive_broadcast_write_seconds_count{\(worker)}"], "5")
        XCTAssertEqual(page["hive_broadcast_write_seconds_sum{\(worker)}"], "2.00155")
        XCTAssertEqual(page["hive_broadcast_write_seconds_count{worker=\"0\"}"], "0")
    }

    func testLiveBytes_findConnectionsInEveryChunkTheMasterReserved_perWorker() throws {
        let registry = SharedRegistry.heap(capacity: 1000, workerCount: 3)  // worker 2 starts at slot 666
        var ids: [ConnectionID] = []
        for worker in [0, 2, 2] {
            let id = try XCTUnwrap(registry.reserve(worker: worker, remote: remote))
            XCTAssertTrue(registry.activate(id))
            registry.add(10 * (worker + 1), to: .bytesIn, of: id)
            ids.append(id)
        }
        XCTAssertGreaterThan(ids[1].slot / SharedRegistry.slotsPerChunk, 0, "worker 2's slots are in a later chunk")
        let live = registry.liveBytes()
        XCTAssertEqual(live.map(\.bytesIn), [10, 0, 60])
        XCTAssertEqual(registry.reservedChunks.filter { $0 }.count, 2, "only the chunks used were marked")
    }
}
