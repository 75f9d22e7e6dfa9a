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
        // A custom pattern matches the whole origin (issue #11, item 11), not a part of it.
        let o = Options(allowedOrigin: "https://([a-z0-9-]+\\.)*trusted\\.org")
        #expect(status(head(origin: "https://app.trusted.org"), o) == nil)
        #expect(status(head(origin: "https://trusted.org"), o) == nil)
        #expect(status(head(origin: "https://trustedXorg"), o) == .forbidden)
        #expect(status(head(origin: "https://trusted.org.evil.com"), o) == .forbidden)
        #expect(status(head(origin: "https://evil.com/https://trusted.org"), o) == .forbidden)
        let unanchored = Options(allowedOrigin: "trusted\\.org")
        #expect(status(head(origin: "https://app.trusted.org"), unanchored) == .forbidden)
        #expect(status(head(origin: "trusted.org"), unanchored) == nil)
    }

    /// Issue #11, item 11: the origin pattern is anchored at both ends, in each of its compiled
    /// forms (split around `{{host}}`, per host, fixed): an origin that merely contains an allowed
    /// one is refused.
    @Test func originPatternIsAnchoredAtBothEnds() {
        let host = "127.0.0.1:13000"
        // The default pattern (split form): the reported bypass.
        #expect(status(head(host: host, origin: "http://evil.com/http://127.0.0.1:13000")) == .forbidden)
        #expect(status(head(host: host, origin: "http://127.0.0.1:13000")) == nil)
        // Per-host form (alternation around the host).
        let perHost = Options(allowedOrigin: "(http|https)://{{host}}")
        #expect(status(head(host: host, origin: "http://evil.com/http://127.0.0.1:13000"), perHost) == .forbidden)
        #expect(status(head(host: host, origin: "http://127.0.0.1:13000/"), perHost) == .forbidden)
        #expect(status(head(host: host, origin: "https://127.0.0.1:13000"), perHost) == nil)
        // Fixed form (no host).
        let fixed = Options(allowedOrigin: "https://app\\.example")
        #expect(status(head(origin: "https://app.example.evil"), fixed) == .forbidden)
        #expect(status(head(origin: "x-https://app.example"), fixed) == .forbidden)
        #expect(status(head(origin: "https://app.example"), fixed) == nil)
    }

    /// Issue #11, item 7: Host is checked (syntax, length) before it reaches a regular
    /// expression; each answer is 400 with a reason naming Host. An Origin over 1024 bytes is
    /// refused with 403 before any matching.
    @Test func hostSyntaxAndLengthAreCheckedFirst() {
        func reason(_ h: HTTPRequestHead) -> String? {
            if case .failure(let r) = Handshake.evaluate(h, options: Options(allowAnyOrigin: true)) { return "\(r.status.code) \(r.reason)" }
            return nil
        }
        let long = String(repeating: "a", count: 300)
        #expect(reason(head(host: long, origin: "http://" + long)) == "400 Host header too long (over 261 bytes)")
        let fortyK = String(repeating: "a", count: 40_000)
        #expect(status(head(host: fortyK, origin: "http://" + fortyK)) == .badRequest)
        for bad in ["a b", "evil.com/x", "a@b", "[::1", "[]:80", "example.com:808000", "example.com:8x", ":80", "a%zz", "é.com"] {
            #expect(reason(head(host: bad, origin: nil))?.hasPrefix("400 invalid Host header") == true, "\(bad)")
        }
        for good in ["example.com", "example.com:8080", "127.0.0.1:3000", "[::1]:3000", "[fe80::1]", "a-b_c~d.e", "xn--bcher-kva.example", "%41b"] {
            #expect(reason(head(host: good, origin: nil)) == nil, "\(good)")
        }
        let max = String(repeating: "a", count: 255) + ":65535"
        #expect(reason(head(host: max, origin: nil)) == nil)
        #expect(status(head(origin: "http://example.com" + String(repeating: "/", count: 1100)), Options(allowedOrigin: "http://example\\.com/*")) == .forbidden)
        #expect(status(head(origin: "http://example.com" + String(repeating: "/", count: 900)), Options(allowedOrigin: "http://example\\.com/*")) == nil)
    }

    /// Issue #11, item 10: a handshake over HTTP/1.0 is refused with 400 and a reason (RFC 6455
    /// §4.1 requires HTTP/1.1 or later); HTTP/1.1 and 2.0 heads pass this check.
    @Test func http10HandshakeIsRefused() {
        var h = head()
        h.version = .http1_0
        if case .failure(let r) = Handshake.evaluate(h, options: Options()) {
            #expect(r.status == .badRequest)
            #expect(r.reason == "WebSocket handshake requires HTTP/1.1 or later, not HTTP/1.0")
        } else {
            Issue.record("an HTTP/1.0 handshake was accepted")
        }
        h.version = .init(major: 0, minor: 9)
        #expect(status(h) == .badRequest)
        h.version = .http1_1
        #expect(status(h) == nil)
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
