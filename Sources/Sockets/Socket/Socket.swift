public import NIOCore
public import NIOHTTP1
import NIOConcurrencyHelpers

/// What the handler of a socket route can know about the request that opened the connection.
public struct SocketRequest: Sendable {
    /// The request head (method, URI, headers).
    public let head: HTTPRequestHead
    /// Path parameters from the route pattern (`:name`, and `*` for a catch-all).
    public let params: [String: String]
    /// The peer's address, when known.
    public let remoteAddress: SocketAddress?
    /// The subprotocol agreed in the handshake, if any.
    public let subprotocol: String?

    /// The request's headers.
    public var headers: HTTPHeaders { head.headers }
    /// The request path, without the query.
    public var path: String { String(RequestTarget.path(of: head.uri)) }
}

/// One event of a connection, for a single loop over ``Socket/events``: the Swift counterpart of
/// the reference's `select` over receiver, errors and done.
public enum SocketEvent<Message: Sendable>: Sendable {
    /// A message from the peer, decoded.
    case message(Message)
    /// Something went wrong: a message that did not decode, a protocol violation by the peer, a
    /// timeout. Errors that end the connection are followed by ``done(_:)``.
    case error(WebSocketError)
    /// The connection is over, with this close code (the peer's, ours, or 1006 when the
    /// connection dropped without a close handshake). Always the last event.
    case done(CloseCode)
}

/// A WebSocket connection bound to a message type: the reference's channels, in Swift.
///
/// ```swift
/// app.get("/sockets/rooms/:name", Sockets.json(Message.self)) { params, socket in
///     for await event in socket.events {
///         switch event {
///         case .message(let msg): try await socket.send(msg)   // echo
///         case .error(let error): print("error:", error)
///         case .done: return
///         }
///     }
/// }
/// ```
///
/// - ``receiver``: messages only; ``errors``: errors only; ``events``: both, then `.done`. Each
///   message or error is delivered once, to whichever of them asks first.
/// - ``send(_:)`` (or ``sender``) suspends while `sendChannelBuffer` messages wait unsent.
/// - ``disconnect(_:reason:)`` starts the close handshake; ``done`` waits for the end.
/// When `recvChannelBuffer` messages wait unread, the server stops reading the socket.
public final class Socket<Message: Sendable>: Sendable {
    /// The request that opened the connection.
    public let request: SocketRequest
    let inbox: Inbox<Message>
    private let output: WebSocketSender
    private let codec: SocketCodec<Message>
    private let allocator: ByteBufferAllocator
    private let maxMessageSize: Int

    init(request: SocketRequest, sender: WebSocketSender, allocator: ByteBufferAllocator, codec: SocketCodec<Message>, options: Options) {
        self.request = request
        self.output = sender
        self.codec = codec
        self.allocator = allocator
        self.maxMessageSize = options.maxMessageSize
        self.inbox = Inbox(capacity: options.recvChannelBuffer,
                           onRoom: { sender.resumeReading() },
                           onCaughtUp: { sender.caughtUp() })
    }

    /// The subprotocol agreed in the handshake, if any.
    public var subprotocol: String? { request.subprotocol }

    /// The messages from the peer, decoded; ends when the connection does.
    public var receiver: Receiver { Receiver(inbox: inbox, view: .messages) }

    /// The errors of the connection; ends when the connection does.
    public var errors: Errors { Errors(inbox: inbox, view: .errors) }

    /// Messages and errors in order, then `.done` with the close code.
    public var events: Events { Events(inbox: inbox, view: .events) }

    /// A handle for sending, to pass to other tasks (for example a room that broadcasts).
    public var sender: Sender { Sender(socket: self) }

    /// Waits for the connection to end and returns its close code.
    public var done: CloseCode {
        get async { await inbox.waitDone() }
    }

    /// Whether the connection has ended.
    public var isDone: Bool { inbox.isFinished }

    /// Sends a message. Suspends while `sendChannelBuffer` messages wait unsent.
    ///
    /// - Throws: ``WebSocketError/closed`` once the connection is closing or closed;
    ///   ``WebSocketError/outgoingMessageTooBig`` for a message over `maxMessageSize`; an encoding
    ///   error from the message type (JSON).
    public func send(_ message: Message) async throws {
        let frame = try codec.encode(message, allocator)
        try await send(frame: frame)
    }

    /// Sends a message, choosing per message whether permessage-deflate may compress it (when the
    /// route enables compression and the client agreed). `compress: false` sends it as it is:
    /// for data that is already compressed, or secrets that should not share a compression window
    /// with text an attacker chooses.
    public func send(_ message: Message, compress: Bool) async throws {
        var frame = try codec.encode(message, allocator)
        if !compress {
            switch frame {
            case .text(let b): frame = .uncompressed(.text(b))
            case .binary(let b): frame = .uncompressed(.binary(b))
            default: break
            }
        }
        try await send(frame: frame)
    }

    /// Encodes a message once, for sending to many sockets (a room's broadcast): every
    /// ``send(_:)-(PreparedMessage)`` shares the same payload bytes; only the 2–10 byte frame
    /// header is written per recipient.
    ///
    /// - Throws: an encoding error from the message type (JSON).
    public func prepare(_ message: Message) throws -> PreparedMessage {
        PreparedMessage(frame: try codec.encode(message, allocator))
    }

    /// Sends a message prepared with ``prepare(_:)`` (by this or any other socket of the same
    /// route kind). Suspends like ``send(_:)-(Message)``.
    public func send(_ prepared: PreparedMessage) async throws {
        try await send(frame: prepared.frame)
    }

    /// Sends an already encoded frame: checked here (closed, too big), then queued for the
    /// connection's event loop, which takes queued frames in batches (one hop and one flush per
    /// batch). Suspends only while `sendChannelBuffer` frames wait.
    func send(frame: WebSocketOutbound) async throws {
        switch frame {
        case .text(let b), .binary(let b), .uncompressed(.text(let b)), .uncompressed(.binary(let b)):
            if b.readableBytes > maxMessageSize { throw WebSocketError.outgoingMessageTooBig }
        case .ping, .close:
            break
        }
        guard !inbox.isFinished, await output.waitForRoom(), output.enqueue(frame, compress: true) else {
            throw WebSocketError.closed
        }
    }

    /// Starts the close handshake with `code` (the reference's `disconnect <- code`), after the
    /// messages sent before; ``done`` then waits for the end. A code that may not be sent
    /// (1005, 1006, 1015, …) sends a close frame without a code.
    ///
    /// - Parameters:
    ///   - code: the close code; default ``CloseCode/normalClosure``.
    ///   - reason: up to 123 bytes of UTF-8, cut at a character boundary if longer.
    public func disconnect(_ code: CloseCode = .normalClosure, reason: String = "") async {
        output.close(code, reason: reason)
    }

    /// Called when the connection has ended, with the outcome the connection's state machine
    /// recorded (the peer's close code, the failure's, the code we sent, or 1006).
    func connectionEnded(_ result: CloseResult) {
        inbox.finish(result.code)
    }

    /// The messages of a socket (``receiver``).
    public typealias Receiver = SocketSequence<Message, Message>
    /// The errors of a socket (``errors``).
    public typealias Errors = SocketSequence<Message, WebSocketError>
    /// Messages, errors and the final `.done` of a socket (``events``).
    public typealias Events = SocketSequence<Message, SocketEvent<Message>>

    /// A sending handle that can be stored and used from other tasks.
    public struct Sender: Sendable {
        let socket: Socket<Message>
        /// Sends a message; see ``Socket/send(_:)-(Message)``.
        public func send(_ message: Message) async throws { try await socket.send(message) }
        /// Sends a prepared message; see ``Socket/send(_:)-(PreparedMessage)``.
        public func send(_ prepared: PreparedMessage) async throws { try await socket.send(prepared) }
        /// Encodes once for many sends; see ``Socket/prepare(_:)``.
        public func prepare(_ message: Message) throws -> PreparedMessage { try socket.prepare(message) }
    }
}

/// One view of a socket's inbox as an `AsyncSequence`: ``Socket/receiver`` (messages),
/// ``Socket/errors`` (errors) or ``Socket/events`` (both, then `.done`). Each entry is delivered
/// once, to whichever view takes it first; every view ends when the connection does (or when the
/// iterating task is cancelled).
public struct SocketSequence<Message: Sendable, Element: Sendable>: AsyncSequence, Sendable {
    enum View: Sendable { case messages, errors, events }
    let inbox: Inbox<Message>
    let view: View

    /// Makes an iterator.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inbox: inbox, view: view) }

    /// Iterates one view of the inbox.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let inbox: Inbox<Message>
        let view: View
        var ended = false

        /// The next element, or nil at the end.
        public mutating func next() async -> Element? {
            if ended { return nil }
            let entry: Inbox<Message>.Entry?
            switch view {
            case .messages: entry = await inbox.take(.message)
            case .errors: entry = await inbox.take(.error)
            case .events: entry = await inbox.take(.any)
            }
            switch (view, entry) {
            case (.messages, .message(let m)?): return m as? Element
            case (.errors, .error(let e)?): return e as? Element
            case (.events, .message(let m)?): return SocketEvent<Message>.message(m) as? Element
            case (.events, .error(let e)?): return SocketEvent<Message>.error(e) as? Element
            case (.events, nil):
                ended = true
                if let code = inbox.takeDone() { return SocketEvent<Message>.done(code) as? Element }
                if Task.isCancelled { return nil }
                return SocketEvent<Message>.done(await inbox.waitDone()) as? Element
            default:
                ended = true
                return nil
            }
        }
    }
}

/// A message encoded once, to send to many sockets without encoding or copying it again.
public struct PreparedMessage: Sendable {
    let frame: WebSocketOutbound
}
