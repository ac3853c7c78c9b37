import Foundation
import JWTKit
import NIOHTTP1
import TokenTestSupport
import XCTest

@testable import HiveWorker

/// The token check of a WebSocket handshake, with tokens signed here by jwt-kit.
final class TokenVerifierTests: XCTestCase {
    private typealias Claims = TokenTestKeys.Claims

    private func hs256Verifier() async throws -> TokenVerifier {
        try await TokenVerifier.make(.secret(Array(TokenTestKeys.secret.utf8)))
    }

    private func rs256Verifier() async throws -> TokenVerifier {
        try await TokenVerifier.make(.publicKey(pem: try TokenTestKeys.rsaPublicPEM(), source: "test.pem"))
    }

    func testHS256_validToken_givesItsClaims() async throws {
        let verifier = try await hs256Verifier()
        XCTAssertEqual(verifier.algorithmName, "HS256")
        let token = try await TokenTestKeys.hs256(Claims(sub: "alice", channels: ["news", "sport"]))
        let verified = try verifier.verify(token).get()
        XCTAssertEqual(verified.subject, "alice")
        XCTAssertEqual(verified.channels, ["news", "sport"])
        XCTAssertTrue(verified.allows(channel: "news"))
        XCTAssertFalse(verified.allows(channel: "weather"))
    }

    func testRS256_andES256_validTokens_areAccepted_theAlgorithmFollowsTheKey() async throws {
        let rsa = try await rs256Verifier()
        XCTAssertEqual(rsa.algorithmName, "RS256")
        let bobToken = try await TokenTestKeys.rs256(Claims(sub: "bob"))
        XCTAssertEqual(try rsa.verify(bobToken).get().subject, "bob")

        let ecKey = ES256PrivateKey()
        let ec = try await TokenVerifier.make(.publicKey(pem: ecKey.publicKey.pemRepresentation, source: "ec.pem"))
        XCTAssertEqual(ec.algorithmName, "ES256")
        let carolToken = try await TokenTestKeys.es256(Claims(sub: "carol"), key: ecKey)
        XCTAssertEqual(try ec.verify(carolToken).get().subject, "carol")
        let otherKeyToken = try await TokenTestKeys.es256(Claims(), key: ES256PrivateKey())
        XCTAssertEqual(ec.verify(otherKeyToken), .failure(.badSignature))
    }

    func testForgedSignature_isRefused() async throws {
        let hs = try await hs256Verifier()
        let forged = try await TokenTestKeys.hs256(Claims(), secret: "another-secret-of-at-least-32-bytes!!")
        XCTAssertEqual(hs.verify(forged), .failure(.badSignature))
        // A valid token whose payload was swapped for another user's keeps its signature, which no longer matches.
        let valid = try await TokenTestKeys.hs256(Claims(sub: "alice"))
        let other = try await TokenTestKeys.hs256(Claims(sub: "mallory"))
        let parts = valid.split(separator: "."), otherParts = other.split(separator: ".")
        XCTAssertEqual(hs.verify("\(parts[0]).\(otherParts[1]).\(parts[2])"), .failure(.badSignature))

        let rs = try await rs256Verifier()
        let otherKey = try await TokenTestKeys.rs256(Claims(), privatePEM: TokenTestKeys.otherRSAPrivatePEM)
        XCTAssertEqual(rs.verify(otherKey), .failure(.badSignature))
    }

    func testExpiredAndNotYetValid_areRefused() async throws {
        let verifier = try await hs256Verifier()
        let now = Date()
        let expired = try await TokenTestKeys.hs256(Claims(exp: now.addingTimeInterval(-1)))
        XCTAssertEqual(verifier.verify(expired, now: now), .failure(.expired))
        let early = try await TokenTestKeys.hs256(Claims(nbf: now.addingTimeInterval(60)))
        XCTAssertEqual(verifier.verify(early, now: now), .failure(.notYetValid))
        XCTAssertEqual(try verifier.verify(early, now: now.addingTimeInterval(61)).get().subject, "alice")
        // No exp: the token does not expire (documented; issuers should set one).
        let forever = try await TokenTestKeys.hs256(Claims(exp: nil))
        XCTAssertEqual(try verifier.verify(forever).get().expiresAt, nil)
    }

    func testWrongAlgorithm_isRefusedByName() async throws {
        let hs = try await hs256Verifier()
        // Signed with the right secret, but the header names HS512 (jwt-kit signs with the key's HS256 anyway).
        let renamed = try await TokenTestKeys.hs256(Claims(), alg: "HS512")
        XCTAssertEqual(hs.verify(renamed), .failure(.wrongAlgorithm(got: "HS512", expected: "HS256")))
        // An HS256 token to an RS256 server (the algorithm-confusion attack signs with the public key as secret).
        let rs = try await rs256Verifier()
        let confused = try await TokenTestKeys.hs256(Claims(), secret: try TokenTestKeys.rsaPublicPEM())
        XCTAssertEqual(rs.verify(confused), .failure(.wrongAlgorithm(got: "HS256", expected: "RS256")))
        // alg "none", no signature.
        let header = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64URL
        let payload = Data(#"{"sub":"alice"}"#.utf8).base64URL
        XCTAssertEqual(hs.verify("\(header).\(payload)."), .failure(.wrongAlgorithm(got: "none", expected: "HS256")))
    }

    func testSubjectClaim_isRequired_andChecked() async throws {
        let verifier = try await hs256Verifier()
        let noSubject = try await TokenTestKeys.hs256(Claims(sub: nil))
        XCTAssertEqual(verifier.verify(noSubject), .failure(.missingSubject))
        let long = try await TokenTestKeys.hs256(Claims(sub: String(repeating: "a", count: 65)))
        guard case .failure(.badSubject(let problem)) = verifier.verify(long) else { return XCTFail("accepted") }
        XCTAssertTrue(problem.contains("65 bytes"), problem)
        let longest = try await TokenTestKeys.hs256(Claims(sub: String(repeating: "é", count: 32)))
        XCTAssertEqual(try verifier.verify(longest).get().subject.utf8.count, 64)
        guard case .failure(.badSubject) = verifier.verify(try await TokenTestKeys.hs256(Claims(sub: ""))) else {
            return XCTFail("an empty sub was accepted")
        }
        guard case .failure(.badSubject) = verifier.verify(try await TokenTestKeys.hs256(Claims(sub: "a\nb"))) else {
            return XCTFail("a control character was accepted")
        }
    }

    func testChannelsClaim_decidesWhichChannelsAreAllowed() async throws {
        let verifier = try await hs256Verifier()
        let none = try verifier.verify(try await TokenTestKeys.hs256(Claims(channels: nil))).get()
        XCTAssertNil(none.channels)
        XCTAssertFalse(none.allows(channel: "news"), "no channels claim: no channel")
        let empty = try verifier.verify(try await TokenTestKeys.hs256(Claims(channels: []))).get()
        XCTAssertFalse(empty.allows(channel: "news"))
        let any = try verifier.verify(try await TokenTestKeys.hs256(Claims(channels: ["*"]))).get()
        XCTAssertTrue(any.allows(channel: "news"))
        guard case .failure(.badChannels) = verifier.verify(try await TokenTestKeys.hs256(Claims(channels: ["bad name"])))
        else { return XCTFail("an invalid channel name was accepted") }
    }

    func testMalformedTokens_areRefused_andNoMessageEchoesTheToken() async throws {
        let verifier = try await hs256Verifier()
        for text in ["", "abc", "a.b", "a.b.c", "a.b.c.d", "!!!.???.###"] {
            XCTAssertEqual(verifier.verify(text), .failure(.malformed), text)
        }
        let token = try await TokenTestKeys.hs256(Claims(exp: Date().addingTimeInterval(-5)))
        let refusal = try XCTUnwrap(verifier.verify(token).failureValue)
        for part in token.split(separator: ".") { XCTAssertFalse(refusal.message.contains(part)) }
    }

    func testHandshake_takesTheBearerHeader_elseTheQuery() {
        func head(_ uri: String, _ headers: [(String, String)] = []) -> HTTPRequestHead {
            HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: HTTPHeaders(headers))
        }
        XCTAssertNil(HandshakeToken.token(in: head("/")))
        XCTAssertNil(HandshakeToken.token(in: head("/?channels=a")))
        XCTAssertEqual(HandshakeToken.token(in: head("/?channels=a&token=x.y.z")), "x.y.z")
        XCTAssertEqual(HandshakeToken.token(in: head("/?token=x%2Ey.z")), "x.y.z")
        XCTAssertEqual(HandshakeToken.token(in: head("/?token=q", [("Authorization", "Bearer h.e.d")])), "h.e.d")
        XCTAssertEqual(HandshakeToken.token(in: head("/?token=q", [("Authorization", "Basic dXNlcg==")])), "q")
        XCTAssertEqual(HandshakeToken.token(in: head("/", [("authorization", "bearer  h.e.d")])), "h.e.d")
    }

    func testKeyChecks_nameTheFileAndWhatToDo() throws {
        XCTAssertNil(TokenKey.secretProblem(Array(TokenTestKeys.secret.utf8), source: "--jwt-secret"))
        XCTAssertTrue(TokenKey.secretProblem(Array("short".utf8), source: "--jwt-secret")?.contains("at least 32 bytes") == true)
        XCTAssertThrowsError(try TokenKey.parsePublicKey(pem: "hello", source: "\"k.pem\"")) {
            XCTAssertTrue("\($0)".hasPrefix("\"k.pem\" is not a PEM public key"), "\($0)")
        }
        XCTAssertThrowsError(try TokenKey.parsePublicKey(pem: TokenTestKeys.rsaPrivatePEM, source: "\"k.pem\"")) {
            XCTAssertTrue("\($0)".contains("holds a private key"), "\($0)")
        }
        let garbled = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        XCTAssertThrowsError(try TokenKey.parsePublicKey(pem: garbled, source: "\"k.pem\"")) {
            XCTAssertTrue("\($0)".contains("neither an RSA key"), "\($0)")
        }
        XCTAssertEqual(try TokenKey.parsePublicKey(pem: try TokenTestKeys.rsaPublicPEM(), source: "k").algorithm, "RS256")
    }
}

private extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

private extension Data {
    var base64URL: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
