import Sockets
import Testing

@Suite struct HandshakeValueTests {
    @Test func rfc6455AcceptExample() {
        // RFC 6455 §1.3 (checked against Python: base64(sha1(key + GUID))).
        #expect(Sockets.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(Sockets.isValidKey("dGhlIHNhbXBsZSBub25jZQ=="))
    }

    @Test func invalidKeysGetNoAcceptValue() {
        for key in ["", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZ SBub25jZQ==", "!GhlIHNhbXBsZSBub25jZQ=="] {
            #expect(Sockets.acceptValue(forKey: key) == nil, "\(key)")
            #expect(!Sockets.isValidKey(key))
        }
    }
}
