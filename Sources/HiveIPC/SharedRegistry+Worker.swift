import Atomics

#if canImport(Glibc)
import Glibc
#endif

// The owning worker's side of the slot life cycle, called on the worker's event loop. Slot counters are plain
// load+store: each word has one writer, so no read-modify-write is needed. Worker counters use atomic
// read-modify-write: during a reload two processes share a worker id.
extension SharedRegistry {
    /// Claims a reserved slot for a socket the worker just adopted. False if the id is stale (the master freed the
    /// slot meanwhile): the caller must close the socket.
    package func activate(_ id: ConnectionID, pid: Int32 = getpid(), now: UInt64 = Clock.wallNanoseconds()) -> Bool {
        let state = slot(id.slot, .state)
        guard state.load(ordering: .acquiring) == SlotState.reserved.rawValue,
            slot(id.slot, .generation).load(ordering: .relaxed) == UInt64(id.generation)
        else { return false }
        for field in [SlotField.bytesIn, .bytesOut, .framesIn, .framesOut, .queuedOut, .requests] {
            slot(id.slot, field).store(0, ordering: .relaxed)
        }
        slot(id.slot, .lastActivity).store(now, ordering: .relaxed)
        slot(id.slot, .ownerPID).store(UInt64(UInt32(bitPattern: pid)), ordering: .relaxed)
        slot(id.slot, .protocolState).store(ProtocolState.http.rawValue, ordering: .relaxed)
        state.store(SlotState.active.rawValue, ordering: .releasing)
        increment(worker: id.worker, .httpConnections)
        return true
    }

    /// Gives back a reserved slot whose socket never arrived (the descriptor was lost on the way). Counted as
    /// closed so least-connections dispatch does not see a phantom connection.
    package func abandon(_ id: ConnectionID) {
        let state = slot(id.slot, .state)
        guard state.load(ordering: .acquiring) == SlotState.reserved.rawValue,
            slot(id.slot, .generation).load(ordering: .relaxed) == UInt64(id.generation)
        else { return }
        state.store(SlotState.free.rawValue, ordering: .releasing)
        increment(worker: id.worker, .closed)
    }

    /// Moves a live connection to another protocol state and keeps the worker's per-protocol counts in step.
    package func setProtocol(_ id: ConnectionID, _ newState: ProtocolState) {
        let word = slot(id.slot, .protocolState)
        let old = ProtocolState(rawValue: word.load(ordering: .relaxed))
        guard old != newState else { return }
        word.store(newState.rawValue, ordering: .releasing)
        if old == .http { decrement(worker: id.worker, .httpConnections) }
        if old == .websocket { decrement(worker: id.worker, .webSocketConnections) }
        if newState == .http { increment(worker: id.worker, .httpConnections) }
        if newState == .websocket { increment(worker: id.worker, .webSocketConnections) }
    }

    /// Ends a connection: the slot goes back to the master's free pool. Safe to call twice.
    package func free(_ id: ConnectionID) {
        let state = slot(id.slot, .state)
        guard state.load(ordering: .acquiring) == SlotState.active.rawValue,
            slot(id.slot, .generation).load(ordering: .relaxed) == UInt64(id.generation)
        else { return }
        let bytesIn = slot(id.slot, .bytesIn).load(ordering: .relaxed)
        let bytesOut = slot(id.slot, .bytesOut).load(ordering: .relaxed)
        setProtocol(id, .closed)
        state.store(SlotState.free.rawValue, ordering: .releasing)
        increment(worker: id.worker, .closed)
        // After the slot is free, so a reader summing live slots and closed totals may miss these bytes for a
        // moment but never counts them twice (the metrics keep their counters monotonic over such a dip).
        increment(worker: id.worker, .closedBytesIn, by: bytesIn)
        increment(worker: id.worker, .closedBytesOut, by: bytesOut)
    }

    @inline(__always)
    package func add(_ amount: Int, to field: SlotField, of id: ConnectionID) {
        let word = slot(id.slot, field)
        word.store(word.load(ordering: .relaxed) &+ UInt64(truncatingIfNeeded: amount), ordering: .relaxed)
    }

    @inline(__always)
    package func set(_ value: UInt64, _ field: SlotField, of id: ConnectionID) {
        slot(id.slot, field).store(value, ordering: .relaxed)
    }

    @inline(__always)
    package func increment(worker: Int, _ field: WorkerField, by amount: UInt64 = 1) {
        self.worker(worker, field).wrappingIncrement(by: amount, ordering: .relaxed)
    }

    @inline(__always)
    package func decrement(worker: Int, _ field: WorkerField) {
        self.worker(worker, field).wrappingDecrement(ordering: .relaxed)
    }
}
