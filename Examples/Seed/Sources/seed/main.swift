// Seed: the story of Hive in one small application.
//
//   seed start --port 9501 --redis redis://127.0.0.1:6379
//   open http://127.0.0.1:9501/, then: redis-cli PUBLISH news hello (or: seed publish news hello)
import Hive

try await HiveMain.run(Seed())
