import NIOHTTP1
import Sockets
import Testing

@Suite struct HandshakeCheckTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    func head(_ method: HTTPMethod = .GET, host: String? = "example.com", origin: String? = "http://example.com",
              extra: [(String, String)] = [], drop: Set<String> = []) -> HTTPRequestHead {
        var h = HTTPHeaders()
        if let host { h.add(name: "Host", value: host) }
        if let origin { h.add(name: "Origin", value: origin) }
        for (n, v) in [("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"), ("Sec-WebSocket-Key", Self.key),
                       ("Sec-WebSocket-Version", "13")] where !drop.contains(n) {
            h.add(name: n, value: v)
        }
        for (n, v) in extra { h.add(name: n, value: v) }
        return HTTPRequestHead(version: .http1_1, method: method, uri: "/ws", headers: h)
    }

    func status(_ head: HTTPRequestHead, _ options: Options = Options()) -> HTTPResponseStatus? {
        switch Handshake.evaluate(head, options: options) {
        case .success: return nil
        case .failure(let r):
            #expect(!r.reason.isEmpty && !r.reason.contains("\n"))
            return r.status
        }
    }

    @Test func acceptsAProperHandshake() throws {
        let result = Handshake.evaluate(head(), options: Options())
        let acc = try result.get()
        #expect(acc.acceptValue == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(acc.responseHeaders["Sec-WebSocket-Accept"] == ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="])
        // Header values are case-insensitive tokens.
        #expect(status(head(extra: []).replacing("Upgrade", "WebSocket").replacing("Connection", "UPGRADE")) == nil)
    }

    @Test func refusalsAndTheirStatuses() {
        #expect(status(head(.POST)) == .methodNotAllowed)
        #expect(status(head(host: nil)) == .badRequest)
        #expect(status(head(extra: [("Host", "other.com")])) == .badRequest)
        #expect(status(head(drop: ["Upgrade"])) == .badRequest)
        #expect(status(head().replacing("Upgrade", "h2c")) == .badRequest)
        #expect(status(head().replacing("Connection", "keep-alive")) == .badRequest)
        #expect(status(head(drop: ["Sec-WebSocket-Key"])) == .badRequest)
        #expect(status(head().replacing("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR==")) == .badRequest)
        #expect(status(head().replacing("Sec-WebSocket-Key", "short")) == .badRequest)
        #expect(status(head(drop: ["Sec-WebSocket-Version"])) == .upgradeRequired)
        #expect(status(head().replacing("Sec-WebSocket-Version", "8")) == .upgradeRequired)
        if case .failure(let r) = Handshake.evaluate(head().replacing("Sec-WebSocket-Version", "8"), options: Options()) {
            #expect(r.headers["Sec-WebSocket-Version"] == ["13"])
        }
        #expect(status(head(origin: "http://evil.com")) == .forbidden)
    }

    @Test func missingOriginIsRefusedUnlessAllowed() {
        #expect(status(head(origin: nil)) == .forbidden)
        #expect(status(head(origin: nil), Options(allowMissingOrigin: true)) == nil)
        #expect(status(head(origin: "http://evil.com"), Options(allowMissingOrigin: true)) == .forbidden)
        #expect(status(head(origin: "http://evil.com"), Options(allowAnyOrigin: true)) == nil)
    }

    @Test func hostIsEscapedInTheOriginPattern() {
        // The reference inserts the host raw, so "." matches any character: a.b lets aXb in.
        #expect(status(head(host: "a.b", origin: "http://aXb")) == .forbidden)
        #expect(status(head(host: "a.b", origin: "http://a.b")) == nil)
        #expect(status(head(host: "a.b", origin: "https://a.b")) == nil)
        #expect(status(head(host: "a.b:8080", origin: "http://a.b:8080")) == nil)
        #expect(status(head(host: "a.b:8080", origin: "http://a.b:8081")) == .forbidden)
        #expect(status(head(host: "a.b", origin: "http://a.b.evil.com")) == .forbidden)
        #expect(status(head(host: "Example.COM", origin: "http://example.com")) == nil) // case-insensitive
        #expect(status(head(host: "[::1]:3000", origin: "http://[::1]:3000")) == nil)
        // A custom pattern: searched, not anchored, like Go's regexp.MatchString.
        let o = Options(allowedOrigin: "trusted\\.org")
        #expect(status(head(origin: "https://app.trusted.org"), o) == nil)
        #expect(status(head(origin: "https://trustedXorg"), o) == .forbidden)
    }

    @Test func subprotocolIsTheServersFirstChoiceAmongTheClients() throws {
        let o = Options(subprotocols: ["chat.v2", "chat.v1"])
        let both = try Handshake.evaluate(head(extra: [("Sec-WebSocket-Protocol", "chat.v1, chat.v2")]), options: o).get()
        #expect(both.subprotocol == "chat.v2")
        #expect(both.responseHeaders["Sec-WebSocket-Protocol"] == ["chat.v2"])
        let one = try Handshake.evaluate(head(extra: [("Sec-WebSocket-Protocol", "chat.v1")]), options: o).get()
        #expect(one.subprotocol == "chat.v1")
        let none = try Handshake.evaluate(head(extra: [("Sec-WebSocket-Protocol", "other")]), options: o).get()
        #expect(none.subprotocol == nil)
        #expect(none.responseHeaders["Sec-WebSocket-Protocol"].isEmpty)
    }
}

extension HTTPRequestHead {
    func replacing(_ name: String, _ value: String) -> HTTPRequestHead {
        var h = self
        h.headers.replaceOrAdd(name: name, value: value)
        return h
    }
}
