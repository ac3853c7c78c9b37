import Atomics

// The master's side of the slot life cycle. Only the master calls these; it is single-threaded.
extension SharedRegistry {
    /// Takes a free slot for a new connection owned by `worker` and returns its id, or nil when every slot is in
    /// use (the caller answers 503). Never touches a live slot.
    package func reserve(worker: Int, remote: RemoteAddress, now: UInt64 = Clock.wallNanoseconds()) -> ConnectionID? {
        let start = cursors[worker]
        for step in 0..<capacity {
            let index = (start + step) % capacity
            guard slot(index, .state).load(ordering: .acquiring) == SlotState.free.rawValue else { continue }
            // Generations start at 1 and skip 0 on wrap, so an id is never 0 and a stale id never matches.
            var generation = UInt32(truncatingIfNeeded: slot(index, .generation).load(ordering: .relaxed)) &+ 1
            if generation == 0 { generation = 1 }
            slot(index, .generation).store(UInt64(generation), ordering: .relaxed)
            slot(index, .worker).store(UInt64(worker), ordering: .relaxed)
            slot(index, .addressHigh).store(remote.bytes.0, ordering: .relaxed)
            slot(index, .addressLow).store(remote.bytes.1, ordering: .relaxed)
            slot(index, .portAndFamily).store(UInt64(remote.port) << 8 | UInt64(remote.family.rawValue), ordering: .relaxed)
            slot(index, .connectedAt).store(now, ordering: .relaxed)
            slot(index, .state).store(SlotState.reserved.rawValue, ordering: .releasing)
            cursors[worker] = (index + 1) % capacity
            reservedChunks[index / Self.slotsPerChunk] = true
            return ConnectionID(generation: generation, worker: worker, slot: index)
        }
        return nil
    }

    /// Gives back a slot whose hand-off failed (the worker never saw it).
    package func release(_ id: ConnectionID) {
        let state = slot(id.slot, .state)
        guard state.load(ordering: .acquiring) == SlotState.reserved.rawValue,
            slot(id.slot, .generation).load(ordering: .relaxed) == UInt64(id.generation)
        else { return }
        state.store(SlotState.free.rawValue, ordering: .releasing)
    }

    /// Frees every slot a dead worker process held: its sockets died with it. `pid` is that process; with
    /// `includeReserved`, sockets still in flight to the worker id are freed too (the caller drained its inbox).
    /// Returns how many were freed. This is the one place where a slot has a second writer, and only once its owner
    /// is gone (nginx force-unlocks the shared mutex of a reaped process the same way).
    @discardableResult
    package func reclaimSlots(ofWorker worker: Int, pid: Int32, includeReserved: Bool) -> Int {
        var freed = 0
        for index in 0..<capacity {
            let state = slot(index, .state)
            let current = state.load(ordering: .acquiring)
            guard current != SlotState.free.rawValue,
                slot(index, .worker).load(ordering: .relaxed) == UInt64(worker)
            else { continue }
            if current == SlotState.active.rawValue {
                guard slot(index, .ownerPID).load(ordering: .relaxed) == UInt64(UInt32(bitPattern: pid)) else { continue }
                let protocolState = ProtocolState(rawValue: slot(index, .protocolState).load(ordering: .relaxed))
                if protocolState == .http { decrement(worker: worker, .httpConnections) }
                if protocolState == .websocket { decrement(worker: worker, .webSocketConnections) }
            } else if !includeReserved {
                continue
            }
            let bytesIn = current == SlotState.active.rawValue ? slot(index, .bytesIn).load(ordering: .relaxed) : 0
            let bytesOut = current == SlotState.active.rawValue ? slot(index, .bytesOut).load(ordering: .relaxed) : 0
            slot(index, .protocolState).store(ProtocolState.closed.rawValue, ordering: .relaxed)
            clearUserRecord(slot: index)  // before the slot is free: its next owner is the record's next writer
            state.store(SlotState.free.rawValue, ordering: .releasing)
            increment(worker: worker, .closed)
            increment(worker: worker, .closedBytesIn, by: bytesIn)
            increment(worker: worker, .closedBytesOut, by: bytesOut)
            freed += 1
        }
        return freed
    }

    /// Connections a worker holds now (handed to it and not yet finished), for least-connections dispatch.
    package func openConnections(ofWorker worker: Int) -> Int {
        let assigned = self.worker(worker, .assigned).load(ordering: .relaxed)
        let closed = self.worker(worker, .closed).load(ordering: .relaxed)
        return assigned > closed ? Int(assigned - closed) : 0
    }

    /// Bytes received and sent by each worker id's live connections, read from the slots this master ever
    /// reserved (master only). Add `closedBytesIn`/`closedBytesOut` for the totals since the start.
    package func liveBytes() -> [(bytesIn: UInt64, bytesOut: UInt64)] {
        var totals = [(bytesIn: UInt64, bytesOut: UInt64)](repeating: (0, 0), count: workerCount)
        let used = reservedChunks.indices.lazy.filter { self.reservedChunks[$0] }
            .flatMap { ($0 * Self.slotsPerChunk)..<min(($0 + 1) * Self.slotsPerChunk, self.capacity) }
        for index in used where slot(index, .state).load(ordering: .acquiring) == SlotState.active.rawValue {
            let worker = Int(slot(index, .worker).load(ordering: .relaxed))
            guard worker < workerCount else { continue }
            totals[worker].bytesIn &+= slot(index, .bytesIn).load(ordering: .relaxed)
            totals[worker].bytesOut &+= slot(index, .bytesOut).load(ordering: .relaxed)
        }
        return totals
    }
}
