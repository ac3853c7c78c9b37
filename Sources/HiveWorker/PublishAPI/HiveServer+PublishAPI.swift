import HTTPTypes
import HiveIPC

// `POST /api/publish`: publishing over HTTP, on the client port, for back ends that do not speak Redis. It goes
// the way `publish(channel:_:)` goes (through Redis when Redis is configured, so every host delivers; to this
// host's subscribers otherwise).
extension HiveServer {
    /// Answers one call of the publish API. Runs in the connection's hook queue, where the request hook would.
    /// Checks in this order: the API is enabled (403), the method (405), the key (401), the call (400, 413), then
    /// publishes. Never throws: every outcome is an answer, and the connection stays open.
    func answerPublishAPI(_ request: HiveRequest) async -> HiveResponse {
        guard let key = publishAPIKey else {
            logger.debug("publish API call refused: no API key configured", metadata: ["connection.id": "\(request.connection)"])
            return PublishAPI.disabled
        }
        do { try PublishRequest.checkMethod(request.head.method.rawValue) } catch { return PublishAPI.rejected(error) }
        if let refusal = Self.authorizationProblem(request.headerFields[values: .authorization], key: key) {
            // The header's value is never logged: it may be a key that is almost right.
            logger.info("publish API call refused", metadata: [
                "connection.id": "\(request.connection)", "reason": "\(refusal)",
                "remote": "\(registry.lookup(request.connection).map { "\($0.remote)" } ?? "?")",
            ])
            return PublishAPI.unauthorized(refusal)
        }
        let call: PublishRequest
        do {
            call = try PublishRequest.parse(
                method: request.head.method.rawValue, query: PublishAPI.query(of: request.uri), body: request.body,
                maxMessageSize: publishAPIMessageLimit)
        } catch {
            logger.debug("publish API call rejected", metadata: [
                "connection.id": "\(request.connection)", "reason": "\(error.message)",
            ])
            return PublishAPI.rejected(error)
        }
        do {
            switch call.target {
            case .channel(let channel):
                try await publish(channel: channel, call.message)
            case .user(let user):
                let response = try await publishAPISend(toUser: user, call.message)
                if response.status != .ok { return response }
            }
        } catch let error as HiveError {
            logger.debug("publish API call failed", metadata: [
                "connection.id": "\(request.connection)", "target": "\(call.target)", "error": "\(error)",
            ])
            return PublishAPI.failed(error)
        } catch {
            logger.error("publish API call failed", metadata: [
                "connection.id": "\(request.connection)", "target": "\(call.target)", "error": "\(error)",
            ])
            return PublishAPI.answer(.internalServerError, error: "publishing to \(call.target) failed: \(error)")
        }
        logger.debug("published over HTTP", metadata: [
            "connection.id": "\(request.connection)", "target": "\(call.target)", "message": "\(call.message)",
        ])
        return PublishAPI.published
    }

    /// `POST /api/publish` with `"user"` (or `?user=`): to every connection of the user, on every host through
    /// Redis (`send(toUser:_:)`). A `HiveError` thrown here is answered like a failed channel publish.
    func publishAPISend(toUser user: String, _ message: HiveMessage) async throws -> HiveResponse {
        let limit = publishAPIMessageLimit - (publisher == nil ? 0 : Self.userEnvelopeOverhead(user))
        if message.byteCount > limit {
            return PublishAPI.rejected(PublishRequest.tooLarge(message.byteCount, limit: limit))
        }
        try await send(toUser: user, message)
        return PublishAPI.published
    }

    /// Largest message the API publishes to a channel: what the publisher takes (--max-redis-message), else
    /// --max-message-size.
    var publishAPIMessageLimit: Int { publisher?.configuration.maxMessageSize ?? limits.maxMessageSize }

    /// Bytes a user message carries through Redis besides its payload: the user envelope's 5-byte header ("HU",
    /// version, opcode, id length) and the id.
    static func userEnvelopeOverhead(_ user: String) -> Int { 5 + user.utf8.count }

    /// Why the `Authorization` fields do not carry `key`, or nil when they do. Exactly one field, scheme `apikey`.
    static func authorizationProblem(_ values: [String], key: APIKey) -> String? {
        guard let value = values.first else {
            return "no Authorization header: send Authorization: apikey KEY, with the key given to --api-key"
        }
        guard values.count == 1 else { return "\(values.count) Authorization headers: send exactly one" }
        guard let given = APIKey.credential(inAuthorization: value[...]) else {
            return "the Authorization header is not of the apikey scheme: send Authorization: apikey KEY"
        }
        guard key.matches(given) else {
            return "wrong API key: send the key given to --api-key (or HIVE_API_KEY)"
        }
        return nil
    }
}
