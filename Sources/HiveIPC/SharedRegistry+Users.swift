import Atomics

// The user bound to each connection (`HiveServer.bind`), for `hive connections` and `connectionInfo`: a table
// parallel to the connection slots, 9 words (72 bytes) per slot, so the 128-byte slot keeps its size and a page
// of user records is only touched once a connection on it is bound (or listed).
//
// One writer per record: the worker process owning the connection (the master, for the slots of a dead worker it
// reclaims). The id is 64 bytes, more than one atomic word, so a record is a seqlock: the writer makes the
// sequence odd, writes the id, and makes it even again; a reader retries when the sequence was odd or changed
// while it read, so it never returns half of one id and half of another. The record also names the generation of
// the connection it belongs to: a record left by an earlier connection of the slot is never shown for a later one.
extension SharedRegistry {
    package enum UserField {
        /// Word 0: `sequence << 32 | generation` (sequence odd while the writer writes); words 1...8: the id's
        /// UTF-8 bytes, zero-padded (an id has no NUL, so the first 0 ends it; all zero: no user).
        static let words = 9
        static let idWords = 8
    }

    /// Binds (or with nil, unbinds) the connection's record. Owner worker only; `user` must be valid
    /// (`UserID.problem` is nil). A registry without user records (an older master's) ignores it.
    package func setUser(_ user: String?, of id: ConnectionID) {
        guard id.slot < userCapacity else { return }
        var words = [UInt64](repeating: 0, count: UserField.idWords)
        if let user {
            let bytes = Array(user.utf8.prefix(UserID.maxLength))
            words.withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
        }
        let head = userWord(id.slot, 0)
        let sequence = UInt32(truncatingIfNeeded: head.load(ordering: .relaxed) >> 32)
        // Odd from any start: a writer that died halfway (kill -9) left it odd, and this must still change it.
        let writing = (sequence &+ 1) | 1
        head.store(UInt64(writing) << 32 | UInt64(id.generation), ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)  // the odd sequence is visible before any word of the id
        for (index, word) in words.enumerated() {
            userWord(id.slot, 1 + index).store(UInt64(littleEndian: word), ordering: .relaxed)
        }
        head.store(UInt64(writing &+ 1) << 32 | UInt64(id.generation), ordering: .releasing)
    }

    /// The user bound to connection `id`, or nil (none bound, a record of an earlier connection of the slot, or a
    /// writer that kept changing it for every one of a few tries).
    package func user(of id: ConnectionID) -> String? {
        guard protocolState(of: id) != nil else { return nil }  // a stale id: the slot holds a later connection
        return user(slot: id.slot, generation: id.generation)
    }

    func user(slot index: Int, generation: UInt32) -> String? {
        guard index < userCapacity else { return nil }
        let head = userWord(index, 0)
        for _ in 0..<16 {
            let before = head.load(ordering: .acquiring)
            guard UInt32(truncatingIfNeeded: before) == generation else { return nil }
            if (before >> 32) & 1 == 1 { continue }  // being written
            var words = [UInt64](repeating: 0, count: UserField.idWords)
            for index2 in 0..<UserField.idWords {
                words[index2] = UInt64(littleEndian: userWord(index, 1 + index2).load(ordering: .relaxed))
            }
            atomicMemoryFence(ordering: .acquiring)  // the id's words are read before the sequence is checked again
            guard head.load(ordering: .relaxed) == before else { continue }
            guard words[0] != 0 else { return nil }
            return words.withUnsafeBytes { raw in
                let bytes = raw.prefix { $0 != 0 }
                return String(validating: bytes, as: UTF8.self)
            }
        }
        return nil
    }

    /// The master reclaims a dead worker's slot: its record goes too (its writer is gone, maybe halfway).
    func clearUserRecord(slot index: Int) {
        guard index < userCapacity, userWord(index, 0).load(ordering: .relaxed) != 0 else { return }
        let generation = UInt32(truncatingIfNeeded: slot(index, .generation).load(ordering: .relaxed))
        setUser(nil, of: ConnectionID(generation: generation, worker: 0, slot: index))
    }
}
