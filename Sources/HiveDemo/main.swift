// The `hive` executable: the demo application of Docs/API.md, served the way any Hive application is.
import Hive

try await HiveMain.run(DemoApplication())
