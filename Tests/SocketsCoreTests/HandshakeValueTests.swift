import SocketsCore
import Testing

@Suite struct HandshakeValueTests {
    @Test func rfc6455AcceptExample() {
        // RFC 6455 §1.3 (checked against Python: base64(sha1(key + GUID))).
        #expect(Handshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(Handshake.isValidKey("dGhlIHNhbXBsZSBub25jZQ=="))
    }

    @Test func invalidKeysGetNoAcceptValue() {
        for key in ["", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZ SBub25jZQ==", "!GhlIHNhbXBsZSBub25jZQ=="] {
            #expect(Handshake.acceptValue(forKey: key) == nil, "\(key)")
            #expect(!Handshake.isValidKey(key))
        }
    }
}
