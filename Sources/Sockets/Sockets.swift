internal import CWebSocket

/// Sockets: WebSocket connections as channels for Swift servers.
///
/// The protocol engine is the C module `CWebSocket` (frame parsing, masking, UTF-8 validation);
/// this module is its Swift face. For now it exposes the opening-handshake helpers; the SwiftNIO
/// upgrader, the `Socket` channels and the middleware build on them.
public enum Sockets {
    /// The GUID that RFC 6455 §1.3 appends to the client's key before hashing.
    public static let handshakeGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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
    /// base64(SHA-1(key + GUID)).
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
