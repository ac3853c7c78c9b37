import Foundation
import HiveIPC

/// Reads the live shared registry of a running master from outside, the way any Hive process reads it: the
/// master's memfd is opened through /proc/<pid>/fd and mapped. Tests use it to check what the registry says about
/// each connection without going through the server.
enum RegistryProbe {
    static func attach(masterPID: Int32) throws -> SharedRegistry {
        let dir = "/proc/\(masterPID)/fd"
        for entry in try FileManager.default.contentsOfDirectory(atPath: dir) {
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(entry)")) ?? ""
            guard target.hasPrefix("/memfd:hive-registry") else { continue }
            let fd = open("\(dir)/\(entry)", O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open", while: "opening the registry of master \(masterPID)") }
            return try SharedRegistry.attach(fd: fd)
        }
        throw SystemError("open", while: "finding the registry memfd of master \(masterPID)", errno: ENOENT)
    }

    /// Polls until `condition` holds for the registry, or fails after `timeout`.
    static func wait(
        _ registry: SharedRegistry, timeout: TimeInterval = 5, _ what: String,
        until condition: (SharedRegistry) -> Bool
    ) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition(registry) {
            if Date() > deadline { throw TestClientError.misuse("registry never showed: \(what)") }
            usleep(10_000)
        }
    }
}
