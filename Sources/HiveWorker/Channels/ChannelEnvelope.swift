import Foundation
import HiveRedis
import NIOCore

/// The JSON a client that connected with `envelope=json` receives for each channel message (API.md):
/// `{"channel":"news","offset":"EPOCH:OFFSET","data":"…"}`, `"encoding":"base64"` with the data of a binary
/// payload, no `"offset"` for a message without a position; and `{"channel":"news","recovered":false}` when its
/// `since` could not be honoured. Always a text frame.
enum ChannelEnvelope {
    /// The envelope of one entry.
    static func json(channel: String, entry: ChannelEntry) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entry.payload.count * 4 / 3 + channel.utf8.count + 64)
        out += #"{"channel":"#.utf8
        appendString(channel.utf8, to: &out)
        if let position = entry.position {
            out += #","offset":""#.utf8
            out += position.description.utf8  // letters, digits and one colon: nothing to escape
            out.append(UInt8(ascii: "\""))
        }
        out += #","data":"#.utf8
        if entry.isText {
            appendString(entry.payload, to: &out)
        } else {
            out.append(UInt8(ascii: "\""))
            out += Data(entry.payload).base64EncodedString().utf8
            out += #"","encoding":"base64""#.utf8
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func notRecovered(channel: String) -> [UInt8] {
        var out = Array(#"{"channel":"#.utf8)
        appendString(channel.utf8, to: &out)
        out += #","recovered":false}"#.utf8
        return out
    }

    /// Envelopes of a batch as text frames in one buffer, and where each entry's frame lies in it: encoded once
    /// per worker, sliced for each enveloped subscriber.
    static func frames(channel: String, entries: [ChannelEntry]) -> (buffer: ByteBuffer, ends: [Int]) {
        var buffer = ByteBufferAllocator().buffer(capacity: entries.reduce(0) { $0 + $1.payload.count * 4 / 3 + 96 })
        var ends: [Int] = []
        ends.reserveCapacity(entries.count)
        for entry in entries {
            appendFrame(json(channel: channel, entry: entry), to: &buffer)
            ends.append(buffer.writerIndex)
        }
        return (buffer, ends)
    }

    static func frame(_ json: [UInt8]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: json.count + 10)
        appendFrame(json, to: &buffer)
        return buffer
    }

    private static func appendFrame(_ json: [UInt8], to buffer: inout ByteBuffer) {
        WebSocketFrameCodec.writeHeader(opcode: .text, length: json.count, to: &buffer)
        buffer.writeBytes(json)
    }

    /// A JSON string of valid UTF-8: quotes, backslashes and control characters escaped, the rest as it is.
    static func appendString(_ utf8: some Sequence<UInt8>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [0x5C, 0x22]
            case UInt8(ascii: "\\"): out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0..<0x20: out += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
