public import NIOHTTP1

/// What a ``WebSocketClient`` connection asks for beyond the connection's limits and timers
/// (those are a ``WebSocketConfiguration``, as on a server route).
public struct WebSocketClientOptions: Sendable {
    /// Extra request headers, sent after the ones the handshake needs (`Origin`, `Authorization`,
    /// cookies…). `Host`, `Upgrade`, `Connection` and the `Sec-WebSocket-*` headers are the
    /// client's own: giving one is ``WebSocketClientError/invalidRequestHeader(name:reason:)``.
    /// Default: none.
    public var headers: HTTPHeaders
    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in order of preference. The server's
    /// answer must be one of them (or none). Default: none.
    public var subprotocols: [String]
    /// How long the TCP connection may take. Default 10 s.
    public var connectTimeout: Duration
    /// How long, once connected, the TLS handshake (for `wss://`) and the server's answer to the
    /// upgrade request may take together. Default 10 s.
    public var handshakeTimeout: Duration
    /// The largest response head accepted (status line and headers). Default 16 KiB.
    public var maxResponseHeadSize: Int
    /// TLS for `wss://` URLs. Default ``WebSocketClientTLS/init(trustRootsFile:verifyCertificates:serverName:)``
    /// with its defaults: the system's trust roots, certificates verified.
    public var tls: WebSocketClientTLS

    /// Creates options; every parameter has the default given on its property.
    ///
    /// - Parameters:
    ///   - headers: default none.
    ///   - subprotocols: default none.
    ///   - connectTimeout: default 10 s.
    ///   - handshakeTimeout: default 10 s.
    ///   - maxResponseHeadSize: default 16 KiB.
    ///   - tls: default: system trust roots, verification on.
    public init(headers: HTTPHeaders = [:], subprotocols: [String] = [], connectTimeout: Duration = .seconds(10),
                handshakeTimeout: Duration = .seconds(10), maxResponseHeadSize: Int = 16 * 1024,
                tls: WebSocketClientTLS = WebSocketClientTLS()) {
        self.headers = headers
        self.subprotocols = subprotocols
        self.connectTimeout = connectTimeout
        self.handshakeTimeout = handshakeTimeout
        self.maxResponseHeadSize = maxResponseHeadSize
        self.tls = tls
    }
}

/// TLS settings of a client (used for `wss://` URLs only).
public struct WebSocketClientTLS: Sendable {
    /// A PEM file of CA certificates to trust instead of the system's (a test CA, a private
    /// CA). Default `nil`: the system's trust roots.
    public var trustRootsFile: String?
    /// Verify the server's certificate chain and that it names the host. Default `true`.
    /// `false` accepts any certificate: only for self-signed test servers.
    public var verifyCertificates: Bool
    /// The name sent in SNI and checked against the certificate. Default `nil`: the URL's host
    /// (no SNI for an IP address; the certificate must then name the address).
    public var serverName: String?

    /// Creates TLS settings; every parameter has the default given on its property.
    ///
    /// - Parameters:
    ///   - trustRootsFile: default `nil` (system roots).
    ///   - verifyCertificates: default `true`.
    ///   - serverName: default `nil` (the URL's host).
    public init(trustRootsFile: String? = nil, verifyCertificates: Bool = true, serverName: String? = nil) {
        self.trustRootsFile = trustRootsFile
        self.verifyCertificates = verifyCertificates
        self.serverName = serverName
    }
}

/// Why a client connection could not be opened. Each case says what was wrong, and a header
/// problem names the header.
public enum WebSocketClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    case invalidURL(String)
    /// An extra request header may not be sent (a header the handshake sets itself, or a name or
    /// value with a line break).
    case invalidRequestHeader(name: String, reason: String)
    /// The TCP connection did not complete within `connectTimeout`.
    case connectTimeout
    /// The TLS handshake and the server's answer to the upgrade request did not complete within
    /// `handshakeTimeout`.
    case handshakeTimeout
    /// The server answered with another status than 101 Switching Protocols (it refused).
    case unexpectedStatus(Int, reason: String)
    /// The server's 101 response breaks RFC 6455 §4.1 (or RFC 7692) in this header.
    case invalidResponseHeader(name: String, reason: String)
    /// The response is not HTTP/1.1, or its head is malformed or larger than allowed.
    case malformedResponse(String)
    /// The connection closed before the handshake completed.
    case closedDuringHandshake
    /// TLS failed: the trust roots could not be loaded, or the server's certificate was not
    /// trusted or did not name the host. The text is the TLS library's reason.
    case tls(String)

    /// A one-line description naming the problem.
    public var description: String {
        switch self {
        case .invalidURL(let reason): "invalid WebSocket URL: \(reason)"
        case .invalidRequestHeader(let name, let reason): "request header \(name): \(reason)"
        case .connectTimeout: "connect timeout: no connection within connectTimeout"
        case .handshakeTimeout: "handshake timeout: no response to the upgrade request within handshakeTimeout"
        case .unexpectedStatus(let status, let reason): "handshake refused: the server answered \(status) \(reason), not 101"
        case .invalidResponseHeader(let name, let reason): "invalid handshake response: \(name): \(reason)"
        case .malformedResponse(let reason): "malformed handshake response: \(reason)"
        case .closedDuringHandshake: "the connection closed during the opening handshake"
        case .tls(let reason): "TLS: \(reason)"
        }
    }
}

/// What the server agreed in the opening handshake.
public struct WebSocketClientResponse: Sendable {
    /// The response's headers.
    public let headers: HTTPHeaders
    /// The subprotocol the server chose, if any (always one of those offered).
    public let subprotocol: String?
    /// The `Sec-WebSocket-Extensions` value the server answered (permessage-deflate agreed),
    /// if any.
    public let extensions: String?
}
