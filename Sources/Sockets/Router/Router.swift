public import NIOCore
public import NIOHTTP1

/// An HTTP request as a route's handlers see it.
public struct Request: Sendable {
    /// Method, URI, version and headers.
    public let head: HTTPRequestHead
    /// Path parameters: `:name` segments by name, a catch-all under `"*"` (or its given name).
    public var params: [String: String]
    /// The body (empty when there is none); bounded by the app's `maxBodySize`.
    public let body: ByteBuffer
    /// The peer's address, when known.
    public let remoteAddress: SocketAddress?

    /// Creates a request (for tests and custom servers).
    public init(head: HTTPRequestHead, params: [String: String] = [:], body: ByteBuffer = ByteBuffer(), remoteAddress: SocketAddress? = nil) {
        self.head = head
        self.params = params
        self.body = body
        self.remoteAddress = remoteAddress
    }

    /// The method.
    public var method: HTTPMethod { head.method }
    /// The headers.
    public var headers: HTTPHeaders { head.headers }
    /// The path, without the query string.
    public var path: String { String(RequestTarget.path(of: head.uri)) }
}

/// An HTTP response.
public struct Response: Sendable {
    /// The status.
    public var status: HTTPResponseStatus
    /// The headers; `Content-Length` is set when the response is written.
    public var headers: HTTPHeaders
    /// The body.
    public var body: ByteBuffer
    /// Set by a socket route's end of chain when the handshake was accepted: the upgrade goes on
    /// with this acceptance (the response is then a 101 that only middleware sees).
    var upgrade: HandshakeAcceptance? = nil
    /// With ``upgrade``: the route the HTTP handler installs the socket with.
    var upgradeRoute: WebSocketRoute? = nil

    /// Creates a response.
    public init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A plain-text response: the body and a `Content-Type: text/plain; charset=utf-8` header.
    public static func text(_ text: String, status: HTTPResponseStatus = .ok) -> Response {
        Response(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: ByteBuffer(string: text))
    }
}

/// One piece of a route's handler chain: answer with a `Response`, or return `nil` to pass the
/// request on to the next piece (Martini's handlers that do not write).
public typealias Handler = @Sendable (_ request: Request) async throws -> Response?

/// The rest of the chain, for a ``Middleware``.
public typealias Next = @Sendable (_ request: Request) async throws -> Response

/// Code that runs around every HTTP route (logging, recovery, static files): answer, or call
/// `next` and return (or change) what it answers.
public typealias Middleware = @Sendable (_ request: Request, _ next: Next) async throws -> Response

/// A compiled path pattern: `/rooms/:name/*`.
struct PathPattern: Sendable, CustomStringConvertible {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case param(String)
        case catchAll(String)
    }

    let segments: [Segment]
    let description: String

    /// Parses a pattern. `:name` matches one segment, `*` (or `*name`) matches the rest of the
    /// path, possibly empty, and must come last.
    init(_ pattern: String) throws(RouteError) {
        var segs: [Segment] = []
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: true)
        for (i, p) in parts.enumerated() {
            if p.hasPrefix(":") {
                let name = String(p.dropFirst())
                guard !name.isEmpty else { throw RouteError(pattern: pattern, reason: "empty parameter name") }
                segs.append(.param(name))
            } else if p.hasPrefix("*") {
                guard i == parts.count - 1 else { throw RouteError(pattern: pattern, reason: "a catch-all must be the last segment") }
                let name = p.dropFirst()
                segs.append(.catchAll(name.isEmpty ? "*" : String(name)))
            } else {
                segs.append(.literal(String(p)))
            }
        }
        self.segments = segs
        self.description = pattern
    }

    /// The parameters when `path` matches.
    func match(_ path: Substring) -> [String: String]? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        var params: [String: String] = [:]
        var i = 0
        for seg in segments {
            switch seg {
            case .literal(let l):
                guard i < parts.count, parts[i] == l else { return nil }
                i += 1
            case .param(let name):
                guard i < parts.count else { return nil }
                params[name] = String(parts[i]).removingPercentEncoding
                i += 1
            case .catchAll(let name):
                params[name] = parts[i...].joined(separator: "/")
                i = parts.count
            }
        }
        return i == parts.count ? params : nil
    }
}

/// A mistake in a route's pattern, found when the route is added.
public struct RouteError: Error, Sendable, CustomStringConvertible {
    /// The pattern as written.
    public let pattern: String
    /// What is wrong with it.
    public let reason: String
    /// `"invalid route <pattern>: <reason>"`.
    public var description: String { "invalid route \(pattern): \(reason)" }
}

extension String {
    /// Decodes `%XX` escapes; nil when an escape is malformed or the result is not UTF-8.
    var removingPercentEncoding: String? {
        guard self.utf8.contains(UInt8(ascii: "%")) else { return self }
        var bytes: [UInt8] = []
        var it = self.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else { return nil }
                bytes.append(hv << 4 | lv)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
