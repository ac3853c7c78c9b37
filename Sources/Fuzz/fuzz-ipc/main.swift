// libFuzzer target: records a worker or the master reads from its SOCK_SEQPACKET inbox, through `IPCCodec`.
// Every byte sequence must decode or throw a `DecodeError`, never trap; and a record that decodes must encode back
// to a record that decodes to the same message (a disconnect reason to its first 123 bytes of whole characters,
// what the encoder keeps).
import HiveFuzzSupport

@testable import HiveIPC

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIPC(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let record = UnsafeRawBufferPointer(start: data, count: size)
    _ = IPCCodec.hasExternalPayload(record)
    guard let message = try? IPCCodec.decode(record, external: nil) else { return 0 }
    let encoded = IPCCodec.encode(message, payloadInline: true)
    let again = encoded.withUnsafeBytes { try? IPCCodec.decode($0, external: nil) }
    if case .disconnect(let id, let code, let reason) = message, case .disconnect(id, code, let kept)? = again {
        fuzzCheck(reason.utf8.starts(with: kept.utf8) && kept.utf8.count <= 123, "reason \(reason) was kept as \(kept)")
    } else {
        fuzzCheck(again == message, "\(message) does not survive encode and decode")
    }
    return 0
}

runFuzzer(fuzzIPC)
