#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Builds a Swift package that depends on Hive the way a user's package does (`.package(path: "../hive")`), with
/// `swift build`, for tests that run the executable it makes.
///
/// Everything lives in `.build/examples` of this repository (git ignores it; `make clean` removes it):
/// - `hive`: a symlink to the repository. SwiftPM names a path dependency after its folder, so a user's
///   `.product(name: "Hive", package: "hive")` needs the folder to be called `hive`, whatever this clone is called.
/// - `scratch`: the one `--scratch-path` of every such build (and of `make examples`). The first build compiles
///   Hive and its dependencies (about 6 minutes on 2 busy cores); later ones reuse them. Hive's own modules are
///   compiled again (about a minute) when the package switches between an example (whose `../..` SwiftPM resolves
///   to the repository's real path) and `upper` (through the `hive` link, which it keeps): the compiler's
///   arguments differ (`-package-name`, include paths). A scratch path per package would spare that minute on
///   later runs but compile everything twice on a clean clone.
///   SwiftPM keeps one build plan per scratch path and does not notice that the root package changed, so it is
///   deleted before each build (`debug.yaml`, `debug/description.json`) and made again, in about 2 s.
enum PackageBuild {
    /// The repository: this file is in its Tests/IntegrationTests/Support.
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = repository.appendingPathComponent(".build/examples", isDirectory: true)
    static let scratch = directory.appendingPathComponent("scratch", isDirectory: true)
    /// Where `.package(path: "../hive")` of a package in `directory` points.
    static let hiveLink = directory.appendingPathComponent("hive")

    /// One build at a time: they share `scratch`.
    private static let lock = NSLock()

    /// `.build/examples/hive`, made (relative, `../..`) if missing.
    static func prepareLink() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: hiveLink.path)) == "../.." { return }
        try? FileManager.default.removeItem(at: hiveLink)
        try FileManager.default.createSymbolicLink(atPath: hiveLink.path, withDestinationPath: "../..")
    }

    /// An example of this repository (`Examples/<name>`).
    static func example(_ name: String) -> URL {
        repository.appendingPathComponent("Examples/\(name)", isDirectory: true)
    }

    /// Builds `product` of the package at `package` (debug) and returns the executable. The build's output goes to
    /// `.build/examples/build-<product>.log`; a failure throws with its tail.
    static func build(package: URL, product: String, timeout: TimeInterval = 1800) throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        try prepareLink()
        for plan in ["debug.yaml", "debug/description.json"] {
            try? FileManager.default.removeItem(at: scratch.appendingPathComponent(plan))
        }
        let log = directory.appendingPathComponent("build-\(product).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process = Process()
        let swift = ProcessInfo.processInfo.environment["SWIFT"].flatMap { $0.isEmpty ? nil : $0 } ?? "swift"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            swift, "build", "--package-path", package.path, "--scratch-path", scratch.path, "--product", product,
        ]
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let started = ContinuousClock.now
        try process.run()
        let deadline = TestDeadline(seconds: timeout)
        while process.isRunning {
            if deadline.remaining <= 0 {
                process.terminate()
                process.waitUntilExit()
                throw TestClientError.misuse("swift build of \(product) (\(package.path)) did not finish in \(Int(timeout)) s; log \(log.path):\n" + tail(log))
            }
            usleep(100_000)
        }
        HiveProcess.note("built \(product) in \(started.duration(to: .now)) (log \(log.path))")
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw TestClientError.misuse("swift build of \(product) (\(package.path)) failed with status \(process.terminationStatus); log \(log.path):\n" + tail(log))
        }
        let binary = scratch.appendingPathComponent("debug/\(product)")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw TestClientError.binaryNotFound(path: binary.path)
        }
        return binary
    }

    private static func tail(_ log: URL) -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(40).joined(separator: "\n")
    }
}
