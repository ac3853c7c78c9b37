// swift-tools-version:6.0
import PackageDescription

// The story of Hive as an application of its own: the page on `/`, its WebSocket, and worker 0 subscribed to the
// Redis channel `news`, whose every message reaches every WebSocket client.
let package = Package(
    name: "Seed",
    platforms: [.macOS(.v13)],
    dependencies: [
        // `name: "hive"`: a path dependency is otherwise named after its folder, which is whatever the clone of
        // Hive is called. Outside this repository: `.package(url: "https://github.com/<owner>/hive", from: "0.1.0")`.
        .package(name: "hive", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "seed", dependencies: [.product(name: "Hive", package: "hive")]),
    ]
)
