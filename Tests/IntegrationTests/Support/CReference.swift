import Foundation
import XCTest

/// The C reference servers of `make bench` (scripts/reference/*.c), built for a test with the compiler bench.sh
/// uses: gcc, else cc, else the Swift toolchain's clang. Warnings are errors here.
enum CReference {
    static func build(_ name: String) throws -> URL {
        let source = PackageBuild.repository.appendingPathComponent("scripts/reference/\(name).c")
        let binary = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(name)-\(getpid())-\(UUID().uuidString.prefix(8))")
        let compile = try BenchRun.command("/bin/sh", [
            "-c", "\"$(command -v gcc || command -v cc || command -v clang)\" -O2 -Wall -Werror -o \"$0\" \"$1\"",
            binary.path, source.path,
        ])
        XCTAssertEqual(compile.status, 0, compile.text)
        return binary
    }
}
