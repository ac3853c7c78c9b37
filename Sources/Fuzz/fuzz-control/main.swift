// libFuzzer target: bytes a client writes to the master's control socket (`hive push`, `hive status`, ...),
// through `ControlRequest.parse`, which runs in the master itself: a trap there stops the whole server.
//
// Input: [max read size][bytes from the client]. The parse is repeated as the bytes arrive, as the master does
// after each read; once a request is complete, more bytes must not change it.
import HiveFuzzSupport

@testable import HiveMaster

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size) else { return 0 }
    var buffer: [UInt8] = []
    var first: ControlRequest?
    for read in input.reads() {
        buffer += read.readableBytesView
        guard buffer.count <= ControlServer.maxRequest else { break }
        let request = ControlRequest.parse(buffer)
        if let first {
            fuzzCheck(request == first, "a complete request changed as more bytes arrived: \(first) -> \(String(describing: request))")
        }
        first = first ?? request
    }
    return 0
}

runFuzzer(fuzzControl)
