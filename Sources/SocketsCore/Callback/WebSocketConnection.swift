public import NIOCore

/// One connection, as the event-loop callback API sees it: valid on the connection's event loop.
///
/// Everything here is synchronous and never suspends. ``send(_:compress:)`` frames the message
/// into the connection's output buffer (small frames are copied into one per-connection buffer;
/// large payloads go out beside their header in one gather write), and everything sent during
/// one read is flushed once, when the read is done. From another thread, use ``sender``.
public struct WebSocketConnection {
    let handler: WebSocketHandler
    let context: ChannelHandlerContext

    /// The connection's event loop: call this API only there.
    public var eventLoop: any EventLoop { context.eventLoop }

    /// The peer's address, when known.
    public var remoteAddress: SocketAddress? { context.channel.remoteAddress }

    /// Sends a message.
    ///
    /// - Parameters:
    ///   - message: the payload (text must be valid UTF-8).
    ///   - compress: whether permessage-deflate may compress it (when agreed).
    /// - Returns: what happened to it; see ``WebSocketSendResult``.
    @discardableResult
    public func send(_ message: WebSocketMessage, compress: Bool = true) -> WebSocketSendResult {
        handler.sendFromApplication(message, compress: compress, context: context)
    }

    /// Sends a text message.
    @discardableResult
    public func send(text: String) -> WebSocketSendResult {
        send(.text(context.channel.allocator.buffer(string: text)))
    }

    /// Sends a ping with up to 125 bytes of payload.
    ///
    /// - Returns: ``WebSocketSendResult/closed`` once the connection is closing.
    @discardableResult
    public func ping(_ payload: ByteBuffer = ByteBuffer()) -> WebSocketSendResult {
        handler.pingFromApplication(payload, context: context)
    }

    /// Starts the close handshake (a code that may not be sent sends an empty close frame).
    public func close(_ code: CloseCode = .normalClosure, reason: String = "") {
        handler.closeFromApplication(code, reason: reason, context: context)
    }

    /// Bytes sent but not yet taken by the socket: in the output buffer and in the channel.
    public var bufferedAmount: Int { handler.bufferedAmount(context: context) }

    /// Whether the connection is still open for sending.
    public var isOpen: Bool { handler.canSend }

    /// A handle for sending from other threads and tasks.
    public var sender: WebSocketSender { handler.sender(context: context) }

    /// Stops reading the socket until ``WebSocketSender/resumeReading()`` (the channel layer's
    /// full inbox).
    package func pauseReading() { handler.pauseReading() }

    /// Per-connection storage for the application (set it in `open`), kept until the connection
    /// ends.
    public var userData: AnyObject? {
        get { handler.userData }
        nonmutating set { handler.userData = newValue }
    }
}

@available(*, unavailable)
extension WebSocketConnection: Sendable {}

/// What happened to a message given to ``WebSocketConnection/send(_:compress:)``.
public enum WebSocketSendResult: Sendable, Equatable {
    /// Framed into the output buffer; goes out with the next flush.
    case sent
    /// Framed, but the output holds more than `maxBufferedAmount`: stop sending until `drain`.
    case backpressure
    /// Not sent: over `maxBufferedAmount` with the `.drop` policy.
    case dropped
    /// Not sent: the connection is closing or closed.
    case closed
    /// Not sent: the message is larger than `maxMessageSize`.
    case tooBig
}

/// Sends to a connection from any thread or task. Sends are queued and taken by the event loop
/// in batches: one hop and one flush per batch, not per message.
public struct WebSocketSender: Sendable {
    let queue: OutboundQueue
    let loop: NIOLoopBound<WebSocketHandler>
    let context: NIOLoopBound<ChannelHandlerContext>
    /// The event loop's side of a hop: made once per connection.
    let drain: @Sendable () -> Void
    package let maxMessageSize: Int

    /// Queues a message.
    ///
    /// - Returns: ``WebSocketSendResult/sent`` when queued, ``WebSocketSendResult/tooBig`` or
    ///   ``WebSocketSendResult/closed`` when refused.
    @discardableResult
    public func send(_ message: WebSocketMessage, compress: Bool = true) -> WebSocketSendResult {
        switch message {
        case .text(let b), .binary(let b): if b.readableBytes > maxMessageSize { return .tooBig }
        }
        let frame: WebSocketOutbound = switch message {
        case .text(let b): .text(b)
        case .binary(let b): .binary(b)
        }
        return enqueue(frame, compress: compress) == .queued ? .sent : .closed
    }

    /// Starts the close handshake after what was queued before.
    public func close(_ code: CloseCode = .normalClosure, reason: String = "") {
        _ = enqueue(.close(code, reason: reason), compress: false)
    }

    /// The queue's capacity is reached: suspends until there is room; false once closed.
    package nonisolated(nonsending) func waitForRoom() async -> Bool { await queue.waitForRoom() }

    /// On any thread: the application has room again; the event loop resumes reading.
    package func resumeReading() {
        let loop = self.loop, context = self.context
        loop.eventLoop.execute { loop.value.resumeReading(context: context.value) }
    }

    /// On any thread: the application has taken every message before a held close and queued
    /// its replies; the event loop sends them, then the close.
    package func caughtUp() {
        let loop = self.loop, context = self.context
        loop.eventLoop.execute { loop.value.applicationCaughtUp(context: context.value) }
    }

    /// Queues a frame and schedules the event loop's drain if none is on its way: `.queued`, or
    /// `.closed`; when `bounded`, `.full` while the queue's capacity of frames wait (then
    /// ``waitForRoom()``, and again).
    package func enqueue(_ frame: WebSocketOutbound, compress: Bool, bounded: Bool = false) -> OutboundQueue.Admission {
        let admission = queue.append(frame, compress: compress, bounded: bounded)
        guard admission == .queuedMustHop else { return admission }
        loop.eventLoop.execute(drain)
        return .queued
    }
}

/// The event-loop callback API for a route: what to do when a connection opens, for each
/// message, when the output drains after backpressure, and when it closes. Each is called on the
/// connection's event loop, synchronously (uWebSockets' behaviour, in Swift).
///
/// ```swift
/// let echo = WebSocketBehavior(message: { connection, message in connection.send(message) })
/// ```
public struct WebSocketBehavior: Sendable {
    /// The connection is open.
    public var open: (@Sendable (WebSocketConnection) -> Void)?
    /// A message arrived: a view of the unmasked payload, valid during the call (keep the
    /// `ByteBuffer` to use it later; it is not copied).
    public var message: @Sendable (WebSocketConnection, WebSocketMessage) -> Void
    /// The output drained after ``WebSocketSendResult/backpressure``.
    public var drain: (@Sendable (WebSocketConnection) -> Void)?
    /// The connection ended, with how (the peer's close code and reason, a failure's, ours, or 1006).
    public var close: (@Sendable (WebSocketConnection, CloseResult) -> Void)?

    /// Creates a behaviour.
    public init(open: (@Sendable (WebSocketConnection) -> Void)? = nil,
                message: @escaping @Sendable (WebSocketConnection, WebSocketMessage) -> Void,
                drain: (@Sendable (WebSocketConnection) -> Void)? = nil,
                close: (@Sendable (WebSocketConnection, CloseResult) -> Void)? = nil) {
        self.open = open
        self.message = message
        self.drain = drain
        self.close = close
    }
}

/// The callback API as a ``WebSocketApplication``.
final class BehaviorApplication: WebSocketApplication {
    let behavior: WebSocketBehavior
    init(_ behavior: WebSocketBehavior) { self.behavior = behavior }
    func open(_ connection: WebSocketConnection) { behavior.open?(connection) }
    func message(_ connection: WebSocketConnection, _ message: WebSocketMessage) { behavior.message(connection, message) }
    func ending(_ connection: WebSocketConnection, _ report: WebSocketInbound) {}
    func drain(_ connection: WebSocketConnection) { behavior.drain?(connection) }
    var holdsUnansweredMessages: Bool { false } // replies were framed during each callback
    func closed(_ connection: WebSocketConnection, _ result: CloseResult) { behavior.close?(connection, result) }
}
