/// A WebSocket close code (RFC 6455 §7.4). Write `.normalClosure`, or any number: `4001`.
public struct CloseCode: RawRepresentable, Hashable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// The code as it appears on the wire.
    public let rawValue: UInt16

    /// Wraps a code. Codes that may not be sent (1005, 1006, 1015, and anything outside 1000–1003,
    /// 1007–1011, 3000–4999) can still be *reported*; sending one sends an empty close frame instead.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Wraps a code given as a literal, e.g. `4001`.
    public init(integerLiteral value: UInt16) { self.rawValue = value }

    /// 1000: the purpose of the connection was fulfilled.
    public static let normalClosure: CloseCode = 1000
    /// 1001: the server is going down or the page is navigating away.
    public static let goingAway: CloseCode = 1001
    /// 1002: the peer broke the protocol.
    public static let protocolError: CloseCode = 1002
    /// 1003: a kind of data the endpoint cannot accept.
    public static let unsupportedData: CloseCode = 1003
    /// 1005: the close frame carried no code (reported only, never sent).
    public static let noStatusReceived: CloseCode = 1005
    /// 1006: the connection ended without a close frame (reported only, never sent).
    public static let abnormalClosure: CloseCode = 1006
    /// 1007: a text message was not valid UTF-8, or data did not match its type.
    public static let invalidPayload: CloseCode = 1007
    /// 1008: a policy was violated.
    public static let policyViolation: CloseCode = 1008
    /// 1009: a message was too big.
    public static let messageTooBig: CloseCode = 1009
    /// 1010: the client needed an extension the server did not offer.
    public static let mandatoryExtension: CloseCode = 1010
    /// 1011: the server hit an unexpected condition.
    public static let internalError: CloseCode = 1011

    /// Whether this code may be sent in a close frame.
    public var isSendable: Bool { Engine.isValidCloseCode(rawValue) }

    /// The number, e.g. `"1000"`.
    public var description: String { String(rawValue) }
}

/// Why a connection failed: the close code that was (or would have been) sent and a short reason.
public struct WebSocketError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The close code that goes with the failure (1002, 1007, 1009, …).
    public let code: CloseCode
    /// A short, human-readable reason.
    public let reason: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: the close code that goes with it.
    ///   - reason: a short description.
    public init(code: CloseCode, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// `"<code>: <reason>"`.
    public var description: String { "\(code.rawValue): \(reason)" }

    /// The peer went silent for longer than `pongWait`.
    public static let pongTimeout = WebSocketError(code: .goingAway, reason: "no frame from the peer within pongWait")
    /// A write did not complete within `writeWait`.
    public static let writeTimeout = WebSocketError(code: .goingAway, reason: "write did not complete within writeWait")
    /// A message to send was larger than `maxMessageSize`.
    public static let outgoingMessageTooBig = WebSocketError(code: .messageTooBig, reason: "outgoing message larger than maxMessageSize")
    /// The connection is closing or closed: nothing more can be sent.
    public static let closed = WebSocketError(code: .normalClosure, reason: "connection is closed")
}
