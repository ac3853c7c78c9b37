import NIOCore

/// Cuts a fuzz input into the reads a connection would deliver, so the parsers also meet frames and requests
/// split at every possible point. The first byte picks the largest read (0: the rest arrives in one read), the
/// following `headerBytes` are options for the target, and the remaining bytes are what the peer sent.
public struct FuzzInput {
    public let options: [UInt8]
    public let payload: UnsafeRawBufferPointer
    private let maxRead: Int

    /// Nil when the input is too short to hold the header.
    public init?(_ data: UnsafePointer<UInt8>?, _ size: Int, headerBytes: Int = 0) {
        guard let data, size > headerBytes else { return nil }
        let bytes = UnsafeRawBufferPointer(start: data, count: size)
        self.maxRead = Int(bytes[0])
        self.options = Array(bytes[1..<(1 + headerBytes)])
        self.payload = UnsafeRawBufferPointer(rebasing: bytes[(1 + headerBytes)...])
    }

    /// The payload as reads of 1 to `maxRead` bytes each, their sizes from a small generator seeded by `maxRead`.
    public func reads(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> [ByteBuffer] {
        guard self.maxRead > 0 else {
            return [allocator.buffer(bytes: self.payload)]
        }
        var reads: [ByteBuffer] = []
        var state = UInt32(self.maxRead) &* 2_654_435_761
        var offset = 0
        while offset < self.payload.count {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            let length = min(1 + Int(state % UInt32(self.maxRead)), self.payload.count - offset)
            reads.append(allocator.buffer(bytes: UnsafeRawBufferPointer(rebasing: self.payload[offset..<(offset + length)])))
            offset += length
        }
        return reads
    }
}
