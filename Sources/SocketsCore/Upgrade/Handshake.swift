internal import CWebSocket
public import NIOHTTP1

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
        var h: HTTPHeaders = ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": acceptValue]
        if let subprotocol { h.add(name: "Sec-WebSocket-Protocol", value: subprotocol) }
        if let extensions { h.add(name: "Sec-WebSocket-Extensions", value: extensions) }
        return h
    }
}

/// The server's checks of an opening handshake (RFC 6455 §4.2.1), in this order:
/// 1. the method is GET, else 405;
/// 2. `Host` is present (once, printable ASCII), `Upgrade` contains the token `websocket`,
///    `Connection` contains the token `Upgrade` (both case-insensitive), and `Sec-WebSocket-Key` is
///    the base64 of 16 bytes, else 400;
/// 3. `Sec-WebSocket-Version` is 13, else 426 with `Sec-WebSocket-Version: 13`;
/// 4. the origin check (``HandshakePolicy/allowedOrigin``), else 403; a missing `Origin` is
///    refused unless ``HandshakePolicy/allowMissingOrigin``.
/// The subprotocol is the first of ``HandshakePolicy/subprotocols`` that the client offers, and
/// permessage-deflate is negotiated when the route's configuration enables it.
public enum Handshake {
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
        let hosts = head.headers["Host"]
        guard hosts.count == 1, let host = hosts.first, !host.isEmpty,
              host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(HandshakeRefusal(.badRequest, hosts.count > 1 ? "more than one Host header" : "missing or invalid Host header"))
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
                guard origins.count == 1, origin.allows(origin: origins[0], host: host) else {
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
