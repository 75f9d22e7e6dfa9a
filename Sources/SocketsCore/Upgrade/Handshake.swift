internal import CWebSocket
public import NIOHTTP1
import Logging
package import NIOCore

/// A refused WebSocket handshake: the HTTP status to answer with and a one-line reason.
public struct HandshakeRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// 400, 403, 405 or 426.
    public let status: HTTPResponseStatus
    /// One line of plain text, sent as the response body.
    public let reason: String
    /// Extra response headers (426 carries `Sec-WebSocket-Version: 13`, 405 carries `Allow: GET`).
    public let headers: HTTPHeaders

    package init(_ status: HTTPResponseStatus, _ reason: String, headers: HTTPHeaders = [:]) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    /// `"<code> <reason>"`.
    public var description: String { "\(status.code) \(reason)" }
}

/// A handshake that passed every check.
public struct HandshakeAcceptance: Sendable, Equatable {
    /// The `Sec-WebSocket-Accept` value.
    public let acceptValue: String
    /// The subprotocol chosen from the server's list, if any.
    public let subprotocol: String?
    /// permessage-deflate, when the route enables it and the client offered something acceptable.
    package let compression: CompressionAgreement?

    init(acceptValue: String, subprotocol: String?, compression: CompressionAgreement? = nil) {
        self.acceptValue = acceptValue
        self.subprotocol = subprotocol
        self.compression = compression
    }

    /// The agreed `Sec-WebSocket-Extensions` value (permessage-deflate and its parameters), if any.
    public var extensions: String? { compression?.responseHeader }

    /// The headers of the 101 response.
    public var responseHeaders: HTTPHeaders {
        var h: HTTPHeaders = ["Upgrade": "websocket", "Connection": "Upgrade"]
        addResponseHeaders(to: &h)
        return h
    }

    /// Sets what the handshake decided on a 101 response's headers: the accept value, the chosen
    /// subprotocol and the agreed extension (the one place they are written, for every upgrader).
    package func addResponseHeaders(to headers: inout HTTPHeaders) {
        headers.replaceOrAdd(name: "Sec-WebSocket-Accept", value: acceptValue)
        if let subprotocol { headers.replaceOrAdd(name: "Sec-WebSocket-Protocol", value: subprotocol) }
        if let extensions { headers.replaceOrAdd(name: "Sec-WebSocket-Extensions", value: extensions) }
    }
}

/// The server's checks of an opening handshake (RFC 6455 §4.2.1), in this order:
/// 1. the method is GET, else 405;
/// 2. the request is HTTP/1.1 or later (RFC 6455 §4.1), else 400;
/// 3. `Host` is present once and is a valid `host[:port]` (RFC 3986 §3.2.2-3.2.3: a registered
///    name, an IPv4 address or a bracketed IPv6 literal, at most ``maxHostLength`` bytes), checked
///    before it reaches any regular expression; `Upgrade` contains the token `websocket`,
///    `Connection` contains the token `Upgrade` (both case-insensitive), and `Sec-WebSocket-Key` is
///    the base64 of 16 bytes, else 400;
/// 4. `Sec-WebSocket-Version` is 13, else 426 with `Sec-WebSocket-Version: 13`;
/// 5. the origin check (``HandshakePolicy/allowedOrigin``, at most ``maxOriginLength`` bytes),
///    else 403; a missing `Origin` is refused unless ``HandshakePolicy/allowMissingOrigin``.
/// The subprotocol is the first of ``HandshakePolicy/subprotocols`` that the client offers, and
/// permessage-deflate is negotiated when the route's configuration enables it.
public enum Handshake {
    /// The longest `Host` accepted: 255 bytes of host name (RFC 1035 §2.3.4 bounds a DNS name at
    /// 255), a colon and a 5-digit port. Longer is refused with 400 before any origin matching.
    public static let maxHostLength = 261

    /// The longest `Origin` accepted: a serialized origin is `scheme://host[:port]` (RFC 6454
    /// §6.2), far shorter; longer is refused with 403 before any regular expression runs.
    public static let maxOriginLength = 1024

    /// Runs the checks on a request head, once per connection.
    ///
    /// - Parameters:
    ///   - head: the HTTP request head.
    ///   - route: the route's handshake policy (origin compiled once) and configuration.
    /// - Returns: the acceptance, or the refusal to answer with.
    public static func evaluate(_ head: HTTPRequestHead, route: WebSocketRoute) -> Result<HandshakeAcceptance, HandshakeRefusal> {
        guard head.method == .GET else {
            return .failure(HandshakeRefusal(.methodNotAllowed, "WebSocket handshake must use GET, not \(head.method.rawValue)", headers: ["Allow": "GET"]))
        }
        guard head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1) else {
            return .failure(HandshakeRefusal(.badRequest, "WebSocket handshake requires HTTP/1.1 or later, not HTTP/\(head.version.major).\(head.version.minor)"))
        }
        let hosts = head.headers["Host"]
        guard hosts.count == 1, let host = hosts.first, !host.isEmpty else {
            return .failure(HandshakeRefusal(.badRequest, hosts.count > 1 ? "more than one Host header" : "missing Host header"))
        }
        guard host.utf8.count <= maxHostLength else {
            return .failure(HandshakeRefusal(.badRequest, "Host header too long (over \(maxHostLength) bytes)"))
        }
        guard isValidHost(host) else {
            return .failure(HandshakeRefusal(.badRequest, "invalid Host header: not host[:port]"))
        }
        let upgrade = head.headers[canonicalForm: "Upgrade"]
        guard upgrade.contains(where: { $0.lowercased() == "websocket" }) else {
            return .failure(HandshakeRefusal(.badRequest, "not a WebSocket handshake: Upgrade header must contain \"websocket\""))
        }
        let connection = head.headers[canonicalForm: "Connection"]
        guard connection.contains(where: { $0.lowercased() == "upgrade" }) else {
            return .failure(HandshakeRefusal(.badRequest, "Connection header must contain \"Upgrade\""))
        }
        let keys = head.headers["Sec-WebSocket-Key"]
        guard keys.count == 1, let rawKey = keys.first else {
            return .failure(HandshakeRefusal(.badRequest, keys.isEmpty ? "missing Sec-WebSocket-Key header" : "more than one Sec-WebSocket-Key header"))
        }
        let key = rawKey.trimmingHTTPWhitespace()
        guard let accept = acceptValue(forKey: key) else {
            return .failure(HandshakeRefusal(.badRequest, "Sec-WebSocket-Key is not the base64 of 16 bytes"))
        }
        let versions = head.headers[canonicalForm: "Sec-WebSocket-Version"]
        guard versions.count == 1, versions[0] == "13" else {
            return .failure(HandshakeRefusal(.upgradeRequired, "unsupported WebSocket version: this server speaks version 13",
                                             headers: ["Sec-WebSocket-Version": "13"]))
        }
        let policy = route.handshake
        if let origin = route.origin {
            let origins = head.headers["Origin"]
            if origins.isEmpty {
                if !policy.allowMissingOrigin {
                    return .failure(HandshakeRefusal(.forbidden, "missing Origin header"))
                }
            } else {
                guard origins.count == 1, origins[0].utf8.count <= maxOriginLength,
                      origin.allows(origin: origins[0], host: host) else {
                    return .failure(HandshakeRefusal(.forbidden, "origin not allowed"))
                }
            }
        }
        let offered = head.headers[canonicalForm: "Sec-WebSocket-Protocol"].map(String.init)
        let chosen = policy.subprotocols.first { offered.contains($0) }
        let compression = route.configuration.compression.flatMap { settings in
            CompressionAgreement.negotiate(offers: head.headers["Sec-WebSocket-Extensions"], settings: settings)
        }
        return .success(HandshakeAcceptance(acceptValue: accept, subprotocol: chosen, compression: compression))
    }

    /// Logs a refused handshake at `.warning`, with the status and reason and, as metadata, the
    /// refused `Origin`, the `Host`, the path and the peer's address (at most 128 bytes of each
    /// header: they come from the peer).
    package static func logRefusal(_ refusal: HandshakeRefusal, head: HTTPRequestHead, remoteAddress: SocketAddress?,
                                   configuration: WebSocketConfiguration) {
        func clip(_ values: [String]) -> Logger.MetadataValue {
            guard let v = values.first else { return "(none)" }
            return .string(v.utf8.count <= 128 ? v : String(decoding: v.utf8.prefix(128), as: UTF8.self) + "…")
        }
        configuration.log(.warning, "websocket handshake refused: \(refusal)", metadata: [
            "http.status": "\(refusal.status.code)",
            "ws.origin": clip(head.headers["Origin"]),
            "ws.host": clip(head.headers["Host"]),
            "ws.path": "\(head.uri.utf8.count <= 256 ? head.uri : String(decoding: head.uri.utf8.prefix(256), as: UTF8.self) + "…")",
            "ws.remote": "\(remoteAddress.map { "\($0)" } ?? "?")",
        ])
    }

    /// Whether `host` is a `Host` value this server accepts: `host [ ":" port ]` (RFC 9110 §7.2,
    /// RFC 3986 §3.2.2-3.2.3), where host is a bracketed IPv6 literal (hex digits, `:` and `.`) or
    /// a non-empty registered name or IPv4 address (unreserved characters, `%XX` escapes and
    /// sub-delimiters), and port is at most 5 digits. Length is checked apart
    /// (``maxHostLength``).
    ///
    /// - Parameter host: the header value as received.
    /// - Returns: `true` when the value has that syntax.
    public static func isValidHost(_ host: String) -> Bool {
        let b = Array(host.utf8)
        var i = 0
        func isHex(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
        }
        if b.first == UInt8(ascii: "[") {
            guard let close = b.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
            guard b[1..<close].allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else { return false }
            i = close + 1
        } else {
            let start = i
            while i < b.count, b[i] != UInt8(ascii: ":") {
                let c = b[i]
                switch c {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                     UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
                     UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
                     UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
                    i += 1
                case UInt8(ascii: "%"):
                    guard i + 2 < b.count, isHex(b[i + 1]), isHex(b[i + 2]) else { return false }
                    i += 3
                default:
                    return false
                }
            }
            guard i > start else { return false }
        }
        if i == b.count { return true }
        guard b[i] == UInt8(ascii: ":") else { return false }
        let port = b[(i + 1)...]
        return port.count <= 5 && port.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// Whether `key` is a valid `Sec-WebSocket-Key`: the base64 encoding of exactly 16 bytes
    /// (RFC 6455 §4.1). Surrounding whitespace must already be trimmed.
    ///
    /// - Parameter key: the header value as received.
    /// - Returns: `true` when the server may accept the handshake with this key.
    public static func isValidKey(_ key: String) -> Bool {
        var key = key
        return key.withUTF8 { cws_handshake_key_is_valid($0.baseAddress, $0.count) }
    }

    /// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2):
    /// base64(SHA-1(key + GUID)), computed by the C engine.
    ///
    /// - Parameter key: the client's `Sec-WebSocket-Key`, whitespace trimmed.
    /// - Returns: the 28-character accept value, or `nil` when the key is not valid.
    public static func acceptValue(forKey key: String) -> String? {
        var key = key
        return key.withUTF8 { k -> String? in
            var out = [UInt8](repeating: 0, count: Int(CWS_ACCEPT_LENGTH))
            let status = out.withUnsafeMutableBufferPointer { o in
                o.withMemoryRebound(to: CChar.self) { cws_handshake_accept(k.baseAddress, k.count, $0.baseAddress) }
            }
            guard status == CWS_OK.rawValue else { return nil }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
