import Foundation
import JWTKit

/// Keys and token signing for the token tests. Test-only keys, made with `openssl genrsa 2048`: never use them
/// anywhere else.
public enum TokenTestKeys {
    public static let secret = "0123456789abcdef0123456789abcdef-test-only"
    public static let rsaPrivatePEM = """
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDcxzvJNq1Q7Y6n
ca2f742/m2pTsN2XALdSkJ+aqfd1QQ2hRht8FyYClK8JzPSNwAuv+53hdWuA4hgK
s41P4NqDp214L1XG1tFFFnXdjQTf/WlQ/g3SbS6Euv2pdJ2/ggv1RqZZq6KH3oyK
fEJYhXFn6AyJw86uWEAIPi8FrabXmTV1PwzUaeQgB5OXgaYamsEDW/Xm0sVwO0by
1551J++R/zfGMD3oNMemePwBNZ4B5PtMPYeraMQYytzLe2yM+bszbCKZoafLBAwC
BiE6bW1hq9oSdUxrG677bUIBpo4biriBaWAjzVtoDtRj0TGy80RXIM7J8w9awZpK
fcIYbFrvAgMBAAECggEAZzchxUUxq+cTzUaBJIeLHmwbPnsubX0hN5FzfIw/q2q5
Y49yJAZyd7xpRMyz/F0vWZvpyNDrbHrHQKGGzDRUFD6/F/QRRv+BIKqKegSGpe1E
QmAzuA/hMp51HrbtVO4Ihyf7d2qddqXd0JSdM+NXDHvY+MM5KhsJ/JCNzTrNCHey
vy4OFaM6rJ4ZYChmQW11uYu1UA7nWwBtpUYhQUckLVQFbNjnN3cmEMtv4sHxENAN
W+ve/tq2C2wjduWWLa1T9cSHpDxUGb37iwOTvNQLoEBz9evOxiSP7Y7Og0Obs/Hp
icOYe3Xp99QoQgeihLDVZeI/ugtyNGis174Unl46mQKBgQD0DU7v10Sq9ByB8Uqf
4NDkvcs9FtMFYr/r9vRUocJZzf8o8Q7W9UPwjLMNy4LbL5W0rAehQ+ZyEIZVjG2T
zedCte+C8b/0Grc9Xk+RUSPDUwI5juyQCWZHUBGFIDunZK7bC/fCvqtlzoG7zwlc
RQ9Eysy5D7JdkjgRCAJeOZAdFQKBgQDnljyWcerXf6Y0PydFYIScIsuHNWok2kHF
72G5xqBi4snACMFqSb3Z80i+qGKtJDMZpAkOtoDM9I5Me5R1lSyTazFdDH0kbVB7
LYRj6JZ0Y2bsous2+NRLTUmbKF7NjTovSz1gAfnquSiQRSvtJ+DJ/h1gkGhY0Q+L
tnJdAc3A8wKBgQCma5TSdEb9FG2EJpguoc2QzeOTisbnO0mIjORb+dpgBtrifk8S
QjnMBQXseESJVs+NXmntjDHOwnn4SERIr/XtRcdH0baFrNobXP6BJ4VtomM4AMBM
EDzQkEcCMtK6+StLb8PJ5t9WExXgjfPiGa2pyWkFITEOIbFd28pRmostaQKBgFpA
9cnYCaMEj3yLJD3oeKX09YbzLTPBj6KZQWfKXhVLtz7M6rwGkyPOqYoMS7CYjAWx
JQqD27yEjrSF8PzGL0Igo3NU+6xnodbvjUn2ijQ/zQvqDms1HF9gdpAucov/Py7R
TtEM1B5DHOjk3FKnmPZ/v2kzvkbm6v0TFIzkuBA7AoGBAIGaDMWY7U5dUHJcsEZX
NCAC21dpAEtFxTX6WN+nfm/dppi6cXFOrMs2MJJUA+Xe7kxYAOfjlfUGDNTBzLFU
aL3m2N1dMRmTcsuMs5fd3mOSE+FEebGbEQ/FV0DhBGXw3VcOLeljzxhRJQXy5UJa
U4xgh5ySjU70KIgBwpgfpBb0
-----END PRIVATE KEY-----
"""
    /// A second key pair: tokens signed with it are forgeries to a server that has the first one's public key.
    public static let otherRSAPrivatePEM = """
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDHq3E6ZXBB/v5y
ICCY2xtuay3oQcPocms33cY3GG/JyB6RIo2+zXHfgCqjqWreLVsb8JQZNPhtYnrR
P8u8K+an54qMZSKDxtdtklqssBJAVPu4DNg5wPArQIm2NnCNpEe0HCmDFXgbldlZ
KyoeCg5+TM3RV56wI8kLQIT0TZk+X6UExaNFEhC7WM1I8gllYjZ11rQMfdegAFOy
7+7bklYcDN5DzgwByC532iq6voIcnntKzox7CmzVOLzQMBNCZARKQ6O7W3n3fFnF
F5GJcGHhcX70xOD+2/sa9r3RaRJ0neFFsYxU+X9Lhmg+P5gByk8YLX3PbvQ0rSM/
bm9N6X9XAgMBAAECggEAQ5AfoELy2WIPd06nuRFrFtHtlsmqIN2WqjDBAaOjMAQn
U7T9gbLC9X3I79hD8Sonyix98ImcBmdsZ6HOrr2sLuSKXTdblnuSKeF8DTMG+f3H
r1+pSuGeYwRTlPSW4VbVbHybD2AUZEEwapvQhJmijdovSsb7S17QiJ4sXv5i/FeH
s3yd7xlNYoEM55Op4MLN+1Lpj0JMADp1Dfl8wxeAAR+uPoCfVZ7w6CRDg4yCIiUq
fC8/cGPa4GHHC8CZWJibv4hlgE+ftbWVTCZCptFrVaqBrKY9uDCDlNDn9oBsRCVX
+vpAlrgpJ3oLEdUH3AADinMtsvSAl3HjVq8VOfLyAQKBgQDs0P7WdoOCxNByDj5r
dRSF0oBGGYej5/pdEUnZUzEp+7H4WNxbpyn2zuqFrSqASiNMN5vRtVXrRQl58ZZo
/BYUapv+H3RUSDTywwvw8df0D3hnUImWnGaJB+QegIFjrcBO1AC4n34448ZrTE2l
j1/krSUzQDzG64cghFoLFN2DmQKBgQDX2B0KXOFXtVmiDl22dAkt45q2sow8jjSh
8IjG42O49MS9rFerqg+M6VaTOzMoEk34YxAOQ0QTbjzX9E6dyxWNVRQx4jdO/zHZ
gSxVc4f3KIgnQj87/uxxpMCmnmJLWmzyfJAANh6OEx5XrrYs/HvIfxZrXat8khP4
SdP6GS7wbwKBgEFnZzpr+N5A5SDa9jpPV5+uB2dU3bVS+D6D69VtuIJT1U81m4Zk
oJ5dfz/0F2zfDOib4xkD7/rOUlOveU79cEurNfH1VfeBCb6SR9X/tRjevO4rvBQw
ldD6sPILo7CX6CjdPGXBBudHYSF5LWiwNFe/yiphb2ew3N0KMKQm2xbhAoGBAMHB
QCBjS+193543oyv7cZn97I4ALR7W0KxlzYIr8QLAxjM1l+WDXT4y4AJ+a+eWtuM3
mdwTyfJfTMLWjhPbj9c0/lHhLaD+N/N1nyR99xmJCt+i+jyTFBDXwhBPsRDPdWkf
I+zsp/UFeIFhVit/4mYSnz918FB8mOyS6XRiUt6FAoGAANCrA8MfVML6AUxJsnqn
+pjAJTKS5Q1Zwf0GyaXUrWPuNnjFDxJ6wAa4tqnSubT5ndKSxrdnvHMGw0J7dqmD
N5Mdgk8b6W6tj+upuVirSX0aYNfA+9n3zeWTlJp/XnXxKTD9Vqr0md1FYKF6a4rJ
9aazxQCUOksN44/vaFN9DQg=
-----END PRIVATE KEY-----
"""

    public static func rsaPublicPEM() throws -> String { try Insecure.RSA.PrivateKey(pem: rsaPrivatePEM).publicKey.pemRepresentation }

    /// The claims a test token carries; nil fields are left out.
    public struct Claims: JWTPayload {
        public var sub: SubjectClaim?
        public var exp: ExpirationClaim?
        public var nbf: NotBeforeClaim?
        public var channels: [String]?

        public init(sub: String? = "alice", exp: Date? = Date().addingTimeInterval(3600), nbf: Date? = nil, channels: [String]? = nil) {
            self.sub = sub.map(SubjectClaim.init(value:))
            self.exp = exp.map(ExpirationClaim.init(value:))
            self.nbf = nbf.map(NotBeforeClaim.init(value:))
            self.channels = channels
        }

        public func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    public static func hs256(_ claims: Claims, secret: String = secret, alg: String? = nil) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(claims, header: header(alg))
    }

    public static func rs256(_ claims: Claims, privatePEM: String = rsaPrivatePEM, alg: String? = nil) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(rsa: try Insecure.RSA.PrivateKey(pem: privatePEM), digestAlgorithm: .sha256)
        return try await keys.sign(claims, header: header(alg))
    }

    public static func es256(_ claims: Claims, key: ES256PrivateKey) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key)
        return try await keys.sign(claims)
    }

    private static func header(_ alg: String?) -> JWTHeader {
        var header = JWTHeader()
        if let alg { header.alg = alg }
        return header
    }
}
