// swift-tools-version:6.0
import PackageDescription

// Rooms over WebSocket: a room table per worker (the `Context` of every hook), `/join ROOM` and
// anything else said to the room.
let package = Package(
    name: "Chat",
    platforms: [.macOS(.v13)],
    dependencies: [
        // `name: "hive"`: a path dependency is otherwise named after its folder, which is whatever the clone of
        // Hive is called. Outside this repository: `.package(url: "https://github.com/<owner>/hive", from: "0.1.0")`.
        .package(name: "hive", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "chat", dependencies: [.product(name: "Hive", package: "hive")]),
    ]
)
