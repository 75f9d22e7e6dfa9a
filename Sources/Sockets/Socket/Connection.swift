import Logging
import NIOCore

extension SocketSpec {
    /// A `WebSocketRoute` whose connections each get a ``Socket`` and run `handler` in a task
    /// of their own: the channel layer on any SwiftNIO server. Give it to a
    /// `WebSocketUpgrader` (NIO's `HTTPServerUpgradeHandler`) or a `TypedWebSocketUpgrader`
    /// (NIO's typed, async `configureUpgradableHTTPServerPipeline`, Hummingbird 2).
    ///
    /// ```swift
    /// let chat = try Sockets.json(Message.self, options).route { socket in
    ///     for await message in socket.receiver { try await socket.send(message) }
    /// }
    /// let upgrader = WebSocketUpgrader(route: { _, head in
    ///     RequestTarget.path(of: head.uri) == "/chat" ? chat : nil
    /// })
    /// ```
    /// Build the route once, when the server starts, with `try` (not `try?`): options that do not
    /// validate throw here, naming the field, instead of turning every upgrade into a 404.
    ///
    /// The handler returning starts the close handshake with 1000 (throwing, with 1011); the
    /// socket's request has no path parameters (``SocketRequest/params`` is empty: route on
    /// ``SocketRequest/path`` and ``SocketRequest/query``).
    ///
    /// - Parameter handler: runs once per connection, in its own task.
    /// - Returns: the route, options checked and origin pattern compiled.
    /// - Throws: `OptionsError` naming a wrong option.
    public func route(_ handler: @escaping @Sendable (Socket<Message>) async throws -> Void) throws(OptionsError) -> WebSocketRoute {
        try options.route { channel, head, acceptance in
            let request = SocketRequest(head: head, params: [:], remoteAddress: channel.remoteAddress, subprotocol: acceptance.subprotocol)
            let work = try start(channel: channel, request: request, handler: .socket(handler))
            _ = options.handlerExecutor.startTask(on: channel.eventLoop, work)
        }
    }

    /// Puts a ``Socket`` on an upgraded channel (``WebSocketHandler`` already installed) and
    /// returns the work that runs the user's handler. Must be called on the channel's event loop,
    /// before the first read is handled (from the route's `onUpgrade`).
    ///
    /// Messages go from the handler on the event loop straight into the socket's one bounded inbox
    /// (no task or second queue between); sends go through one queue, taken by the event loop in
    /// batches. The handler returning starts the close handshake with 1000 (a thrown error, with
    /// 1011); the work ends when the connection has.
    func start(
        channel: any Channel,
        request: SocketRequest,
        handler: SocketHandlerCall<Message>
    ) throws -> @Sendable () async -> Void {
        let webSocketHandler = try channel.pipeline.syncOperations.handler(type: WebSocketHandler.self)
        // The connection's log: the route's logger and level, with the connection's metadata.
        let log = webSocketHandler.connectionLog
        let socket = try attachSocket(to: webSocketHandler, request: request, allocator: channel.allocator)
        return { await Self.run(handler, socket, log) }
    }

    /// Makes the connection's ``Socket`` and attaches it to the handler (on the channel's event
    /// loop). Throws `WebSocketError.closed` when the connection is already gone.
    func attachSocket(to handler: WebSocketHandler, request: SocketRequest,
                      allocator: ByteBufferAllocator) throws -> Socket<Message> {
        guard let sender = handler.makeSender(queueCapacity: options.sendChannelBuffer) else {
            throw WebSocketError.closed
        }
        let socket = Socket(request: request, sender: sender, allocator: allocator, codec: codec,
                            recvChannelBuffer: options.recvChannelBuffer)
        handler.attach(SocketBridge(socket: socket), queueCapacity: options.sendChannelBuffer)
        return socket
    }

    // The connection's task is suspended in here for the connection's whole life, so its async
    // frame is memory per connection: the logging is kept in synchronous functions apart, whose
    // locals live on the thread's stack for the moment they run (frame 496 B -> 112 B in a
    // release build). An idle echo connection's task holds two 1 KiB task-allocator slabs (three
    // before SocketSequence's iterator got a small frame).
    private static func run(_ handler: SocketHandlerCall<Message>, _ socket: Socket<Message>,
                            _ log: ConnectionLog) async {
        socket.inbox.claimOwner()
        do {
            switch handler {
            case .socket(let handler): try await handler(socket)
            case .params(let handler): try await handler(socket.request.params, socket)
            }
        } catch {
            if handlerThrew(error, socket, log) { await socket.disconnect(.internalError, reason: "handler error") }
        }
        socket.inbox.readerEnded()
        if !socket.isDone { await socket.disconnect(.normalClosure) }
        logClosed(await socket.done, log)
    }

    /// Logs what the handler threw; true when the connection must be closed with 1011.
    @inline(never)
    private static func handlerThrew(_ error: any Error, _ socket: Socket<Message>, _ log: ConnectionLog) -> Bool {
        if let error = error as? WebSocketError, error == .closed || socket.isDone {
            // A send that raced the close: the connection is over, nothing went wrong here.
            log.log(.debug, "socket handler ended by the close: \(error)")
            return false
        }
        log.log(.error, "socket handler threw: \(error)", metadata: ["error": "\(error)"])
        return !socket.isDone
    }

    @inline(never)
    private static func logClosed(_ result: CloseResult, _ log: ConnectionLog) {
        log.log(.info, "websocket closed: \(result)",
                metadata: ["ws.close_code": "\(result.code.rawValue)", "ws.close_reason": "\(result.reason)"])
    }
}

/// A route's handler, called once per connection by `SocketSpec.run`: as the channel layer's
/// `route` takes it, or with the path parameters first (the App's routes). An enum rather than a
/// wrapping closure: a closure context and two async frames fewer per connection.
enum SocketHandlerCall<Message: Sendable>: Sendable {
    case socket(@Sendable (Socket<Message>) async throws -> Void)
    case params(@Sendable ([String: String], Socket<Message>) async throws -> Void)
}

/// The channel layer on top of a connection's handler: decodes each message once, on the event
/// loop, into the socket's inbox; holds the socket back when the inbox is full; reports failures
/// in order; ends the socket with the state machine's outcome. Holds only the socket (made before
/// it is attached, with the handler's sender): it is memory per connection.
final class SocketBridge<Message: Sendable>: WebSocketApplication {
    let socket: Socket<Message>

    init(socket: Socket<Message>) { self.socket = socket }

    func open(_ connection: WebSocketConnection) {}

    func message(_ connection: WebSocketConnection, _ message: WebSocketMessage) {
        let isText: Bool
        let payload: ByteBuffer
        switch message {
        case .text(let b): (isText, payload) = (true, b)
        case .binary(let b): (isText, payload) = (false, b)
        }
        do throws(SocketCodec<Message>.DecodeFailure) {
            let decoded = try socket.codec.decode(isText, payload)
            if socket.inbox.push(message: decoded) { connection.pauseReading() }
        } catch {
            switch error {
            case .unsupportedType(let reason):
                socket.inbox.push(error: WebSocketError(code: .unsupportedData, reason: reason))
                // After the replies already queued.
                connection.sender.close(.unsupportedData, reason: reason)
            case .malformed(let reason):
                socket.inbox.push(error: WebSocketError(code: .invalidPayload, reason: reason))
            }
        }
    }

    func ending(_ connection: WebSocketConnection, _ report: WebSocketInbound) {
        if case .failed(let error) = report { socket.inbox.push(error: error) }
    }

    var holdsUnansweredMessages: Bool {
        guard socket.inbox.holdsUnanswered else { return false }
        socket.inbox.holdClose()
        return true
    }

    func drain(_ connection: WebSocketConnection) {}

    func pong(_ connection: WebSocketConnection) {
        socket.pongReceived()
    }

    func closed(_ connection: WebSocketConnection, _ result: CloseResult) {
        socket.connectionEnded(result)
    }
}
