import Foundation

/// Runs one `hive` operator command (status, connections, push, ...) to completion.
enum HiveCLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// `environment`: added to (and overriding) this process's environment. `binary`: another Hive application's
    /// executable (`upper`) instead of `hive`.
    static func run(
        _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 20, binary: URL? = nil
    ) throws -> Result {
        let process = Process()
        process.executableURL = binary ?? HiveProcess.binaryURL()
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read before waiting, so a large output cannot fill the pipe and stall the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                throw TestClientError.misuse("hive \(arguments.joined(separator: " ")) did not finish in \(timeout) s")
            }
            usleep(10_000)
        }
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self)
        )
    }

    static func json(_ arguments: [String]) throws -> Any {
        let result = try run(arguments)
        guard result.status == 0 else {
            throw TestClientError.misuse("hive \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }
}
