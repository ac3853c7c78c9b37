// libFuzzer target: a message read from the Redis user channel (`<--channel-prefix>__hive:user`), through
// `UserEnvelope.parse`, which runs in worker 0 on whatever anyone with access to that Redis publishes there.
//
// Beyond "never crash, never trap" it checks that an accepted envelope names a valid user id and an opcode of 1 or
// 2, carries a UTF-8 payload when it is text, and encodes back to exactly the bytes it was parsed from.
import HiveFuzzSupport

@testable import HiveIPC

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUserEnvelope(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard case .success(let envelope) = UserEnvelope.parse(bytes) else { return 0 }
    fuzzCheck(UserID.problem(envelope.user) == nil, "accepted a bad user id \(envelope.user.debugDescription)")
    fuzzCheck(envelope.opcode == 1 || envelope.opcode == 2, "accepted opcode \(envelope.opcode)")
    if envelope.opcode == 1 {
        fuzzCheck(String(validating: envelope.payload, as: UTF8.self) != nil, "accepted a text payload that is not UTF-8")
    }
    fuzzCheck(envelope.encoded() == bytes, "\(envelope) does not encode back to its \(bytes.count) bytes")
    return 0
}

runFuzzer(fuzzUserEnvelope)
