public import NIOCore

/// A message of either kind, undecoded.
public enum WebSocketMessage: Sendable, Equatable {
    /// A text message (valid UTF-8).
    case text(ByteBuffer)
    /// A binary message.
    case binary(ByteBuffer)
}

/// What the WebSocket handler passes up the pipeline: messages, the peer's close, a failure.
public enum WebSocketInbound: Sendable, Equatable {
    /// A complete text message; its bytes are valid UTF-8.
    case text(ByteBuffer)
    /// A complete binary message.
    case binary(ByteBuffer)
    /// The peer closed the connection with this code (``CloseCode/noStatusReceived`` when its
    /// close frame had none) and reason. The close handshake is completed by the handler.
    case closed(CloseCode, reason: String)
    /// The connection failed; the handler sent the error's close code and closes the channel.
    case failed(WebSocketError)
}

/// What the WebSocket handler accepts from the pipeline to send.
public enum WebSocketOutbound: Sendable, Equatable {
    /// A text message; the bytes must be valid UTF-8.
    case text(ByteBuffer)
    /// A binary message.
    case binary(ByteBuffer)
    /// A message that must go out uncompressed even when permessage-deflate is in use (already
    /// compressed data, or secrets that should not share a window with attacker-chosen text).
    case uncompressed(WebSocketMessage)
    /// A ping with up to 125 bytes of payload.
    case ping(ByteBuffer)
    /// Starts the close handshake with this code and reason (at most 123 bytes of UTF-8).
    case close(CloseCode, reason: String)
}
