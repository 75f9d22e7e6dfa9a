import Logging
import NIOCore

extension SocketSpec {
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
        handler: @escaping @Sendable (Socket<Message>) async throws -> Void
    ) throws -> @Sendable () async -> Void {
        let bridge = SocketBridge(spec: self, request: request, allocator: channel.allocator)
        try channel.pipeline.syncOperations.handler(type: WebSocketHandler.self)
            .attach(bridge, queueCapacity: options.sendChannelBuffer)
        guard let socket = bridge.socket else { throw WebSocketError.closed }
        let options = self.options
        return {
            do {
                try await handler(socket)
            } catch {
                options.log(.error, "socket handler threw: \(error)")
                if !socket.isDone { await socket.disconnect(.internalError, reason: "handler error") }
            }
            socket.inbox.readerEnded()
            if !socket.isDone { await socket.disconnect(.normalClosure) }
            _ = await socket.done
        }
    }
}

/// The channel layer on top of a connection's handler: decodes each message once, on the event
/// loop, into the socket's inbox; holds the socket back when the inbox is full; reports failures
/// in order; ends the socket with the state machine's outcome.
final class SocketBridge<Message: Sendable>: WebSocketApplication {
    let spec: SocketSpec<Message>
    let request: SocketRequest
    let allocator: ByteBufferAllocator
    private(set) var socket: Socket<Message>?

    init(spec: SocketSpec<Message>, request: SocketRequest, allocator: ByteBufferAllocator) {
        self.spec = spec
        self.request = request
        self.allocator = allocator
    }

    func open(_ connection: WebSocketConnection) {
        socket = Socket(request: request, sender: connection.sender, allocator: allocator, codec: spec.codec, options: spec.options)
    }

    func message(_ connection: WebSocketConnection, _ message: WebSocketMessage) {
        guard let socket else { return }
        let isText: Bool
        let payload: ByteBuffer
        switch message {
        case .text(let b): (isText, payload) = (true, b)
        case .binary(let b): (isText, payload) = (false, b)
        }
        do throws(SocketCodec<Message>.DecodeFailure) {
            let decoded = try spec.codec.decode(isText, payload)
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
        guard let socket else { return }
        if case .failed(let error) = report { socket.inbox.push(error: error) }
    }

    var holdsUnansweredMessages: Bool {
        guard let socket, socket.inbox.holdsUnanswered else { return false }
        socket.inbox.holdClose()
        return true
    }

    func drain(_ connection: WebSocketConnection) {}

    func closed(_ connection: WebSocketConnection, _ result: CloseResult) {
        socket?.connectionEnded(result)
    }
}
