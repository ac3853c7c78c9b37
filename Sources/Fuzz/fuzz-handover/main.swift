// libFuzzer target: the state a retired worker hands its replacement with each connection at a reload
// (`HandOverState`, the `handOver` record's bytes, chunks included). Bytes from another process, possibly another
// binary: every sequence must decode or throw a `DecodeError`, never trap.
//
// Beyond that it checks that a decoded state encodes to bytes that decode to the same state, that its channel
// names, epochs and token subject are within their limits, and that positions only come with envelopes.
import HiveFuzzSupport

@testable import HiveIPC

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandOver(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let state = try? HandOverState(decoding: bytes) else { return 0 }
    fuzzCheck((try? HandOverState(decoding: state.encoded())) == state, "\(state) does not survive encode and decode")
    fuzzCheck(state.envelopes || state.positions.isEmpty, "positions without envelopes")
    for channel in state.channels { fuzzCheck(ChannelName.problem(channel) == nil, "accepted channel \(channel.debugDescription)") }
    for (channel, position) in state.positions {
        fuzzCheck(state.channels.contains(channel), "a position for \(channel), not one of its channels")
        fuzzCheck(!position.epoch.isEmpty && position.epoch.utf8.count <= HandOverState.maxEpochLength, "epoch \(position.epoch)")
    }
    if let token = state.token {
        fuzzCheck((1...HandOverState.maxSubjectLength).contains(token.subject.utf8.count), "subject \(token.subject.debugDescription)")
        for channel in token.channels ?? [] {
            fuzzCheck(channel == "*" || ChannelName.problem(channel) == nil, "accepted claim \(channel.debugDescription)")
        }
    }
    return 0
}

runFuzzer(fuzzHandOver)
