import NIOCore
import NIOHTTP1
@testable import Sockets
import Testing

/// `SocketRequest` keeps the request packed in one buffer for the connection's life and rebuilds
/// the head, headers and parameters from it: every part must come back as it went in.
struct SocketRequestTests {
    @Test func headHeadersAndParametersComeBackAsTheyWentIn() throws {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "example.com:8080")
        headers.add(name: "Sec-WebSocket-Key", value: "dGhlIHNhbXBsZSBub25jZQ==")
        headers.add(name: "Cookie", value: "a=1")
        headers.add(name: "cookie", value: "b=2") // repeated, other case: kept apart, in order
        headers.add(name: "X-Empty", value: "")
        headers.add(name: "X-Unicode", value: "grüße, 世界")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/rooms/go?user=ann&user=bob&x=%20", headers: headers)
        let params = ["name": "go", "*": "a/b/ç"]
        let request = SocketRequest(head: head, params: params, remoteAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 1234),
                                    subprotocol: "chat")

        #expect(request.head == head)
        #expect(request.headers == headers)
        #expect(Array(request.headers.map { "\($0.name): \($0.value)" }) == Array(headers.map { "\($0.name): \($0.value)" }))
        #expect(request.headers["cookie"] == ["a=1", "b=2"])
        #expect(request.params == params)
        #expect(request.uri == "/rooms/go?user=ann&user=bob&x=%20")
        #expect(request.path == "/rooms/go")
        #expect(request.queryValues("user") == ["ann", "bob"])
        #expect(request.query["x"] == " ")
        #expect(request.subprotocol == "chat")
        #expect(request.remoteAddress?.port == 1234)
    }

    @Test func anEmptyRequestComesBackEmpty() {
        let head = HTTPRequestHead(version: .http1_0, method: .RAW(value: "BREW"), uri: "", headers: [:])
        let request = SocketRequest(head: head, params: [:], remoteAddress: nil, subprotocol: nil)
        #expect(request.head == head)
        #expect(request.head.method == .RAW(value: "BREW"))
        #expect(request.headers.isEmpty)
        #expect(request.params.isEmpty)
        #expect(request.path == "")
    }
}
