import HiveIPC

// `/metrics` for Prometheus, served by the master from the shared registry: one scrape sees every worker and the
// Redis link, and costs the workers nothing.
extension MasterLoop {
    func startMetrics(_ address: ListenAddress) throws {
        metrics = try MetricsServer(address: address)
        let redis = configuration.redis
        let names = { (key: String) in redis[key].map { $0.split(separator: ",").count } ?? 0 }
        metricsPage = HiveMetrics(facts: .init(
            version: HiveVersion.current, redisAddress: configuration.redis["redis-address"],
            redisChannels: names("redis-channels"), redisPatterns: names("redis-patterns")
        ))
        logger.info("serving metrics", metadata: ["metrics.listen": "http://\(address)/metrics"])
    }

    func serveMetrics(_ client: Int32) {
        metrics?.serve(client) {
            metricsPage!.render(RegistrySnapshot(registry), liveBytes: registry.liveBytes(), reloading: supervisor.isReloading)
        }
    }
}
