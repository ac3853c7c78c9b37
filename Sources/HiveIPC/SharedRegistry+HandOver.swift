#if canImport(Glibc)
import Glibc
#endif

// A reload's hand-over of a live connection between two processes of one worker id. The slot stays `active` and
// keeps its id, generation and counters throughout; only `ownerPID` changes, written by the replacement when it
// adopts the socket. That write is also the retired process's acknowledgement: until it sees it, the retired
// process keeps its own copy of the socket and can take the connection back (the replacement died meanwhile).
extension SharedRegistry {
    /// The replacement's side: claims an active slot handed over by the retired process of the same worker id.
    /// False when the id is stale (the connection ended, or the master freed the slot because the old process
    /// died): the caller must not serve the socket.
    package func takeOver(_ id: ConnectionID, pid: Int32 = getpid()) -> Bool {
        guard slot(id.slot, .state).load(ordering: .acquiring) == SlotState.active.rawValue,
            slot(id.slot, .generation).load(ordering: .relaxed) == UInt64(id.generation)
        else { return false }
        slot(id.slot, .ownerPID).store(UInt64(UInt32(bitPattern: pid)), ordering: .releasing)
        return true
    }

    /// Where a handed-over connection stands, as the retired process sees it.
    package enum HandOverProgress: Equatable, Sendable {
        /// Still ours: the replacement has not adopted it (yet).
        case inTransit
        /// `pid` owns it now.
        case adopted(by: Int32)
        /// The replacement refused it (`refuseHandOver`): this process serves it on.
        case refused
        /// The slot no longer holds this connection: the replacement refused it (and closed it) or it ended.
        case gone
    }

    package func handOverProgress(of id: ConnectionID, from pid: Int32 = getpid()) -> HandOverProgress {
        guard slot(id.slot, .state).load(ordering: .acquiring) == SlotState.active.rawValue,
            slot(id.slot, .generation).load(ordering: .relaxed) == UInt64(id.generation)
        else { return .gone }
        let owner = Int32(bitPattern: UInt32(truncatingIfNeeded: slot(id.slot, .ownerPID).load(ordering: .acquiring)))
        return owner == pid ? .inTransit : owner == 0 ? .refused : .adopted(by: owner)
    }
}

extension SharedRegistry {
    /// The replacement's refusal of a handed-over connection (pid 0 in the slot): the retired process serves it on.
    package func refuseHandOver(_ id: ConnectionID) {
        guard slot(id.slot, .generation).load(ordering: .relaxed) == UInt64(id.generation) else { return }
        slot(id.slot, .ownerPID).store(0, ordering: .releasing)
    }
}
