import Hive

/// Rooms over WebSocket. A client sends text: `/join ROOM` moves it into ROOM; `/who` lists the room; anything else
/// is said to its room and reaches every member, the sender included, as `ROOM CONNECTION: TEXT`.
///
/// The room table is per worker (`Rooms`, the `Context`): a room is the members that the worker of the sender
/// holds. With one worker (`--workers 1`) that is every member; with several, members connected to other
/// workers do not hear each other (see README.md, "Limits").
struct Chat: HiveApplication {
    /// Room names are short words, so a line stays readable and a client cannot make a room table of megabytes.
    static let maxRoomName = 32
    /// A larger message is refused rather than fanned out to a whole room.
    static let maxText = 4096

    func shouldUpgrade(path: String) -> Bool { path == "/" }

    func workerStart(_ hive: HiveServer) async throws -> Rooms {
        if hive.workerID == 0, hive.workerCount > 1 {
            hive.logger.warning("chat rooms are per worker: with \(hive.workerCount) workers, members on different workers do not hear each other; start chat with --workers 1")
        }
        return Rooms()
    }

    func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
        request.path == "/" ? .html(ChatPage.html) : .notFound
    }

    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer, context rooms: Rooms) async throws {
        guard case .text(let text) = message else {
            try await hive.push(connection.id, .text("error: send text: /join ROOM, /who, or a message for your room"))
            return
        }
        if text == "/join" || text.hasPrefix("/join ") {
            let words = text.split(separator: " ")
            guard words.count == 2, words[1].count <= Self.maxRoomName else {
                try await hive.push(connection.id, .text("error: send /join ROOM, with ROOM one word of at most \(Self.maxRoomName) characters"))
                return
            }
            let room = String(words[1])
            rooms.join(connection.id, room)
            try await hive.push(connection.id, .text("joined \(room) as \(connection.id)"))
            return
        }
        guard let room = rooms.room(of: connection.id) else {
            try await hive.push(connection.id, .text("error: you are in no room yet; send /join ROOM first"))
            return
        }
        if text == "/who" {
            let ids = rooms.members(of: room).map(\.description).joined(separator: " ")
            try await hive.push(connection.id, .text("in \(room): \(ids)"))
            return
        }
        guard text.utf8.count <= Self.maxText else {
            try await hive.push(connection.id, .text("error: a message is at most \(Self.maxText) bytes, got \(text.utf8.count)"))
            return
        }
        let line = HiveMessage.text("\(room) \(connection.id): \(text)")
        for member in rooms.members(of: room) {
            // A member may have gone between its close and the table's update; the others still get the line.
            try? await hive.push(member, line)
        }
    }

    func close(_ id: ConnectionID, hive: HiveServer, context rooms: Rooms) async {
        rooms.leave(id)
    }
}
