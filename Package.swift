// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: an application (the `hive` demo, HiveDemo; or the user's own executable) -> Hive ->
// {HiveMaster, HiveWorker -> HiveRedis} -> HiveIPC -> CHiveShims; HiveRedis -> CHiredis (Debian's libhiredis-dev, a
// system library); HiveWorker -> CZlib (zlib1g-dev, for permessage-deflate); HiveWorker -> JWTKit (vapor/jwt-kit, with
// swift-crypto's BoringSSL: the handshake tokens of --jwt-secret / --jwt-public-key); Hive -> HiveConfig -> Yams (the
// --config file: YAML or JSON).
// The library product `Hive` is what applications import: the command line (HiveMain) and, re-exported, the
// application API of HiveWorker and the value types of HiveIPC. Everything else is `package` API.
// HiveMaster and HiveIPC never import NIO: the master stays single-threaded so it may fork and spawn safely.
let package = Package(
    name: "Hive",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Hive", targets: ["Hive"]),
        .executable(name: "hive", targets: ["HiveDemo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // JWT signature and claim checks of the WebSocket handshake (--jwt-secret, --jwt-public-key): no hand-written crypto.
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        // `make docs` only (swift package generate-documentation): a command plugin is built when it is run, so
        // `swift build` and `swift test` compile nothing of it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CHiveShims"),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "HiveRedis",
            dependencies: [
                "CHiredis",
                "HiveIPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "HiveIPC",
            dependencies: [
                "CHiveShims",
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),
        .target(
            name: "HiveMaster",
            dependencies: [
                "HiveIPC",
                "CHiveShims",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "HiveWorker",
            dependencies: [
                "HiveIPC",
                "HiveRedis",
                "CHiveShims",
                "CZlib",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ]
        ),
        // The configuration file of `hive start --config`: YAML (or JSON) through Yams, no NIO.
        .target(name: "HiveConfig", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(
            name: "Hive",
            dependencies: [
                "HiveConfig",
                "HiveMaster",
                "HiveWorker",
                "HiveRedis",
                "HiveIPC",
                "CHiveShims",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        // The `hive` executable: the demo application (Docs/API.md), built on the library as a user's would be.
        .executableTarget(name: "HiveDemo", dependencies: ["Hive"]),
        // Load generator for Docs/BENCHMARKS.md and scripts/bench.sh: a lean NIO WebSocket client, no Hive code.
        .executableTarget(
            name: "hive-bench",
            dependencies: [
                "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "HiveIPCTests", dependencies: ["HiveIPC"]),
        .testTarget(name: "HiveRedisTests", dependencies: ["HiveRedis", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "HiveConfigTests", dependencies: ["HiveConfig"]),
        .testTarget(name: "HiveMasterTests", dependencies: ["HiveMaster", "HiveIPC"]),
        .testTarget(
            name: "HiveWorkerTests",
            dependencies: [
                "HiveWorker",
                "HiveIPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "JWTKit", package: "jwt-kit"),
                "TokenTestSupport",
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["HiveDemo", "HiveIPC", "CZlib", "TokenTestSupport", .product(name: "JWTKit", package: "jwt-kit")]
        ),
        // Test-only keys and token signing, shared by the worker's and the integration tests.
        .target(
            name: "TokenTestSupport", dependencies: [.product(name: "JWTKit", package: "jwt-kit")], path: "Tests/TokenTestSupport"
        ),
    ]
)

// libFuzzer targets (Docs/FUZZING.md), declared only when HIVE_FUZZ=1: `make fuzz` and `make fuzz-smoke` set it and
// build them with -sanitize=fuzzer,address into .build-fuzz. They link against libFuzzer's driver and reach
// internals with @testable import, so a normal build or test run neither sees nor compiles them.
if Context.environment["HIVE_FUZZ"] == "1" {
    package.targets += [
        .target(name: "CHiveFuzz", path: "Sources/Fuzz/CHiveFuzz"),
        .target(
            name: "HiveFuzzSupport",
            dependencies: ["CHiveFuzz", .product(name: "NIOCore", package: "swift-nio")],
            path: "Sources/Fuzz/HiveFuzzSupport"
        ),
        .executableTarget(
            name: "fuzz-frames",
            dependencies: [
                "HiveFuzzSupport", "HiveWorker",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Sources/Fuzz/fuzz-frames"
        ),
        .executableTarget(
            name: "fuzz-http",
            dependencies: [
                "HiveFuzzSupport", "HiveWorker", "HiveIPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Sources/Fuzz/fuzz-http"
        ),
        .executableTarget(
            name: "fuzz-http-parser",
            dependencies: [
                "HiveFuzzSupport", "HiveWorker",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Sources/Fuzz/fuzz-http-parser"
        ),
        .executableTarget(
            name: "fuzz-query",
            dependencies: ["HiveFuzzSupport", "HiveWorker", .product(name: "HTTPTypes", package: "swift-http-types")],
            path: "Sources/Fuzz/fuzz-query"
        ),
        .executableTarget(
            name: "fuzz-ipc",
            dependencies: ["HiveFuzzSupport", "HiveIPC"],
            path: "Sources/Fuzz/fuzz-ipc"
        ),
        .executableTarget(
            name: "fuzz-resp",
            dependencies: ["HiveFuzzSupport", "HiveRedis"],
            path: "Sources/Fuzz/fuzz-resp"
        ),
        .executableTarget(
            name: "fuzz-history",
            dependencies: ["HiveFuzzSupport", "HiveRedis", "HiveWorker"],
            path: "Sources/Fuzz/fuzz-history"
        ),
        .executableTarget(
            name: "fuzz-deflate",
            dependencies: ["HiveFuzzSupport", "HiveWorker", .product(name: "NIOCore", package: "swift-nio")],
            path: "Sources/Fuzz/fuzz-deflate"
        ),
        .executableTarget(
            name: "fuzz-handover",
            dependencies: ["HiveFuzzSupport", "HiveIPC"],
            path: "Sources/Fuzz/fuzz-handover"
        ),
        .executableTarget(
            name: "fuzz-user-envelope",
            dependencies: ["HiveFuzzSupport", "HiveIPC"],
            path: "Sources/Fuzz/fuzz-user-envelope"
        ),
        .executableTarget(
            name: "fuzz-control",
            dependencies: ["HiveFuzzSupport", "HiveMaster", "HiveIPC"],
            path: "Sources/Fuzz/fuzz-control"
        ),
        .executableTarget(
            name: "fuzz-publish",
            dependencies: ["HiveFuzzSupport", "HiveWorker", "HiveIPC"],
            path: "Sources/Fuzz/fuzz-publish"
        ),
    ]
}
