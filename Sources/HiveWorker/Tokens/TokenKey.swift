import Foundation
import JWTKit

/// The key WebSocket handshake tokens must be signed with: `--jwt-secret` (HS256) or `--jwt-public-key` (RS256 or
/// ES256, chosen by the kind of key in the PEM file). Made once at start; the master checks it before any worker
/// starts, so a bad file stops `hive start` instead of every handshake.
package enum TokenKey: Sendable, Equatable {
    /// HS256 with this shared secret (at least `minimumSecretBytes`: RFC 7518 section 3.2).
    case secret([UInt8])
    /// A public key in PEM (or a certificate holding one): an RSA key means RS256, an EC P-256 key ES256. `source`
    /// names where it came from, for messages (a file path).
    case publicKey(pem: String, source: String)

    /// RFC 7518 section 3.2: "A key of the same size as the hash output (for instance, 256 bits for HS256) or
    /// larger MUST be used with this algorithm."
    package static let minimumSecretBytes = 32

    /// The one algorithm a token must name in its header (`alg`) and be signed with.
    package var algorithm: String {
        get throws(TokenKeyError) {
            switch self {
            case .secret: "HS256"
            case let .publicKey(pem, source): try Self.parsePublicKey(pem: pem, source: source).algorithm
            }
        }
    }

    /// A secret refused for its length, or nil.
    package static func secretProblem(_ secret: [UInt8], source: String) -> String? {
        guard secret.count < minimumSecretBytes else { return nil }
        return "\(source): an HS256 secret must be at least \(minimumSecretBytes) bytes (RFC 7518 3.2), got "
            + "\(secret.count); make one with `openssl rand -base64 48`"
    }

    /// The key of a PEM file's text, checked as `hive start` checks it.
    /// - Throws: `TokenKeyError` naming `source` and what to give instead.
    package static func parsePublicKey(pem: String, source: String) throws(TokenKeyError) -> ParsedPublicKey {
        if pem.contains("PRIVATE KEY-----") {
            throw TokenKeyError("\(source) holds a private key; give the public key only (`openssl pkey -in KEY "
                + "-pubout -out public.pem`): Hive verifies tokens, it never signs them")
        }
        let isCertificate = pem.contains("-----BEGIN CERTIFICATE-----")
        guard isCertificate || pem.contains("-----BEGIN PUBLIC KEY-----") || pem.contains("-----BEGIN RSA PUBLIC KEY-----")
        else {
            throw TokenKeyError("\(source) is not a PEM public key (no \"-----BEGIN PUBLIC KEY-----\" line); give "
                + "an RSA (RS256) or EC P-256 (ES256) public key in PEM, e.g. from `openssl pkey -in KEY -pubout`")
        }
        if let rsa = try? isCertificate ? Insecure.RSA.PublicKey(certificatePEM: pem) : Insecure.RSA.PublicKey(pem: pem) {
            return .rsa(rsa)
        }
        if let ec = try? isCertificate ? ES256PublicKey(certificate: pem) : ES256PublicKey(pem: pem) {
            return .es256(ec)
        }
        throw TokenKeyError("\(source): the PEM key is neither an RSA key of 2048 bits or more (RS256) nor an EC "
            + "P-256 key (ES256); those are the two kinds of public key Hive accepts")
    }

    /// A public key jwt-kit parsed, and the algorithm it implies.
    package enum ParsedPublicKey {
        case rsa(Insecure.RSA.PublicKey)
        case es256(ES256PublicKey)

        package var algorithm: String {
            switch self {
            case .rsa: "RS256"
            case .es256: "ES256"
            }
        }
    }
}

/// A token key that cannot be used; the message names its source and what to do.
package struct TokenKeyError: Error, CustomStringConvertible, Equatable {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

extension TokenKey: CustomStringConvertible {
    /// Never the secret: a configuration printed to a log must not carry it.
    package var description: String {
        switch self {
        case .secret: "HS256 secret (***)"
        case let .publicKey(_, source): "public key from \(source)"
        }
    }
}
