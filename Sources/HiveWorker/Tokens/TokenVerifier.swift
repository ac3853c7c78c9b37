import Foundation
import HiveIPC
import JWTKit

/// Checks the JWT of a WebSocket handshake: signature (by jwt-kit's algorithm for the configured key), algorithm,
/// `exp`, `nbf`, `sub` and `channels`. One per worker, made at start; `verify` is synchronous and runs on the event
/// loop (measured in release: HS256 about 30 µs, RS256 about 70 µs, ES256 about 200 µs, mostly JSON decoding for
/// HS256; Docs/OPERATIONS.md, "Tokens").
///
/// jwt-kit's own `JWTKeyCollection.verify` is async (an actor): a hop off the event loop and back for every
/// handshake. Its algorithm objects verify synchronously, so this takes the key's algorithm from a collection once
/// and runs the same steps as jwt-kit's signer (split, decode, check the signature over `header.payload`, then the
/// claims) without the hop. No cryptography is done here: the signature check is jwt-kit's.
package final class TokenVerifier: Sendable {
    /// The key's algorithm, as jwt-kit made it for the key.
    private let algorithm: any JWTAlgorithm
    /// "HS256", "RS256" or "ES256": the only `alg` a token's header may name (no algorithm confusion: a token
    /// signed with HS256 using an RSA public key as its secret is refused by name before anything else).
    package let algorithmName: String
    private let parser = DefaultJWTParser()

    private init(algorithm: any JWTAlgorithm, name: String) {
        self.algorithm = algorithm
        self.algorithmName = name
    }

    /// A verifier for `key`.
    /// - Throws: `TokenKeyError` when the key is unusable (checked by `hive start` before, so a worker never sees one).
    package static func make(_ key: TokenKey) async throws -> TokenVerifier {
        let keys = JWTKeyCollection()
        switch key {
        case let .secret(secret):
            if let problem = TokenKey.secretProblem(secret, source: "the JWT secret") { throw TokenKeyError(problem) }
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        case let .publicKey(pem, source):
            switch try TokenKey.parsePublicKey(pem: pem, source: source) {
            case let .rsa(rsa): await keys.add(rsa: rsa, digestAlgorithm: .sha256)
            case let .es256(ec): await keys.add(ecdsa: ec)
            }
        }
        let algorithm = try await keys.getKey()
        return TokenVerifier(algorithm: algorithm, name: algorithm.name)
    }

    /// The verified claims of `token`, or why it is refused. Never echoes the token.
    package func verify(_ token: some StringProtocol, now: Date = Date()) -> Result<HiveToken, TokenRefusal> {
        let bytes = Array(token.utf8)
        let header: JWTHeader
        let payload: TokenPayload
        let signature: Data
        let signingInput: ArraySlice<UInt8>
        do {
            let parts = try parser.getTokenParts(bytes)
            (header, payload, signature) = try parser.parse(bytes, as: TokenPayload.self)
            // `header.payload`: what the signature covers, up to the second period.
            signingInput = bytes[..<parts.payload.endIndex]
        } catch {
            return .failure(.malformed)
        }
        guard header.alg == algorithmName else {
            return .failure(.wrongAlgorithm(got: header.alg, expected: algorithmName))
        }
        do {
            guard try algorithm.verify(signature, signs: signingInput) else { return .failure(.badSignature) }
        } catch {
            return .failure(.badSignature)
        }
        if let exp = payload.exp, !(now < exp.value) { return .failure(.expired) }
        if let nbf = payload.nbf, now < nbf.value { return .failure(.notYetValid) }
        guard let subject = payload.sub?.value else { return .failure(.missingSubject) }
        if let problem = Self.subjectProblem(subject) { return .failure(.badSubject(problem)) }
        if let channels = payload.channels,
           let bad = channels.first(where: { $0 != HiveToken.anyChannel && ChannelName.problem($0) != nil })
        {
            return .failure(.badChannels(ChannelName.problem(bad) ?? bad))
        }
        return .success(HiveToken(subject: subject, channels: payload.channels, expiresAt: payload.exp?.value))
    }

    /// What is wrong with a `sub` as a user id: 1 to 64 bytes of UTF-8 (it came from JSON, so it is), no control
    /// characters. Nil when it is fine.
    package static func subjectProblem(_ subject: String) -> String? {
        let length = subject.utf8.count
        guard (1...64).contains(length) else {
            return "its sub claim is \(length) bytes long; a user id is 1 to 64 bytes"
        }
        if subject.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "its sub claim contains a control character"
        }
        return nil
    }
}

/// The claims Hive reads. Every field is optional so that a token without `sub` is reported as such, not as
/// "malformed"; other claims are ignored.
struct TokenPayload: JWTPayload {
    var sub: SubjectClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var channels: [String]?

    /// Unused: `TokenVerifier.verify` checks the claims itself, synchronously, with the time it is given.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Why a handshake's token is refused: answered 401 (400 for a token given twice), with `message` as the body.
/// No case carries any part of the token.
package enum TokenRefusal: Error, Equatable, CustomStringConvertible {
    case missing
    case malformed
    case wrongAlgorithm(got: String?, expected: String)
    case badSignature
    case expired
    case notYetValid
    case missingSubject
    case badSubject(String)
    case badChannels(String)

    package var message: String {
        switch self {
        case .missing:
            "this server requires a JWT: give it as ?token= on the WebSocket URL or in an "
                + "\"Authorization: Bearer\" header"
        case .malformed:
            "the token is not a JWT (three base64url parts of JSON, separated by periods)"
        case let .wrongAlgorithm(got, expected):
            "the token is signed with \(got.map { "\"\($0.prefix(16))\"" } ?? "no algorithm"); this server accepts "
                + "\(expected) only"
        case .badSignature:
            "the token's signature does not match this server's key"
        case .expired:
            "the token has expired (exp); get a new one"
        case .notYetValid:
            "the token is not valid yet (nbf is in the future); check the issuer's clock"
        case .missingSubject:
            "the token has no sub claim (the user id)"
        case let .badSubject(problem):
            "the token is refused: \(problem)"
        case let .badChannels(problem):
            "the token's channels claim is refused: \(problem)"
        }
    }

    package var description: String { message }
}
