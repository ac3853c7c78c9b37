import Hive

/// Rooms over WebSocket, on any number of workers (and hosts, with Redis). A client sends text: `/join ROOM` moves
/// it into ROOM; `/who` lists the room's members that share its worker; anything else is said to its room and
/// reaches every member, the sender included, as `ROOM CONNECTION: TEXT`.
///
/// A room is a Hive channel, `room.NAME`: joining subscribes the connection to it, and a line is published on it
/// (`hive.publish`), so members on every worker hear it, and on every host when the hosts share a Redis. Which room
/// each connection of a worker is in is that worker's own state (`Rooms`, the `Context`): every hook of a
/// connection runs on its worker, so nothing else needs to know.
struct Chat: HiveApplication {
    /// Room names are short words, so a line stays readable and a client cannot make up channels of any length.
    static let maxRoomName = 32
    /// A larger message is refused rather than fanned out to a whole room.
    static let maxText = 4096

    func shouldUpgrade(path: String) -> Bool { path == "/" }

    func workerStart(_ hive: HiveServer) async throws -> Rooms { Rooms() }

    func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
        request.path == "/" ? .html(ChatPage.html) : .notFound
    }

    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer, context rooms: Rooms) async throws {
        guard case .text(let text) = message else {
            try await hive.push(connection.id, .text("error: send text: /join ROOM, /who, or a message for your room"))
            return
        }
        if text == "/join" || text.hasPrefix("/join ") {
            try await join(text, connection.id, hive: hive, rooms: rooms)
            return
        }
        guard let room = rooms.room(of: connection.id) else {
            try await hive.push(connection.id, .text("error: you are in no room yet; send /join ROOM first"))
            return
        }
        if text == "/who" {
            let ids = rooms.members(of: room).map(\.description).joined(separator: " ")
            try await hive.push(connection.id, .text("in \(room) on worker \(hive.workerID): \(ids)"))
            return
        }
        guard text.utf8.count <= Self.maxText else {
            try await hive.push(connection.id, .text("error: a message is at most \(Self.maxText) bytes, got \(text.utf8.count)"))
            return
        }
        try await hive.publish(channel: Self.channel(room), .text("\(room) \(connection.id): \(text)"))
    }

    private func join(_ text: String, _ id: ConnectionID, hive: HiveServer, rooms: Rooms) async throws {
        let words = text.split(separator: " ")
        guard words.count == 2, words[1].count <= Self.maxRoomName else {
            try await hive.push(id, .text("error: send /join ROOM, with ROOM one word of at most \(Self.maxRoomName) characters"))
            return
        }
        let room = String(words[1])
        do {
            if let old = rooms.room(of: id) { try await hive.unsubscribe(id, from: Self.channel(old)) }
            try await hive.subscribe(id, to: Self.channel(room))
        } catch let error as HiveError where error.code == .invalidArgument || error.code == .channelLimit {
            try await hive.push(id, .text("error: cannot join \(room): \(error)"))
            return
        }
        rooms.join(id, room)
        try await hive.push(id, .text("joined \(room) as \(id)"))
    }

    func close(_ id: ConnectionID, hive: HiveServer, context rooms: Rooms) async {
        rooms.leave(id)  // its channels are left by Hive itself
    }

    static func channel(_ room: String) -> String { "room." + room }
}
