import Logging
import NIOCore
import NIOConcurrencyHelpers

extension SocketSpec {
    /// Wraps an upgraded channel (``WebSocketHandler`` already installed) and returns the work that
    /// runs the connection: a pump from the channel into the socket's inbox, and the user's
    /// handler, as two child tasks of one group. Must be called on the channel's event loop.
    ///
    /// The connection ends when the channel closes; the handler returning starts the close
    /// handshake with 1000 (a thrown error, with 1011). The channel is closed when both are done.
    func start(
        channel: any Channel,
        request: SocketRequest,
        handler: @escaping @Sendable (Socket<Message>) async throws -> Void
    ) throws -> @Sendable () async -> Void {
        let recv = options.recvChannelBuffer
        // The connection's outcome, as its state machine records it.
        let closeResult = try channel.pipeline.syncOperations.handler(type: WebSocketHandler.self).closeResult
        let asyncChannel = try NIOAsyncChannel<WebSocketInbound, WebSocketOutbound>(
            wrappingChannelSynchronously: channel,
            configuration: .init(backPressureStrategy: .init(lowWatermark: max(1, recv / 2), highWatermark: max(1, recv)))
        )
        let codec = self.codec
        let options = self.options
        return {
            let socket = Socket(request: request, channel: channel, codec: codec, options: options)
            // A handler that stops reading must not keep a dead connection from ending.
            channel.closeFuture.whenComplete { _ in socket.inbox.stopBackpressure() }
            try? await asyncChannel.executeThenClose { inbound, _ in
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        await Self.pump(inbound, into: socket, codec: codec)
                        socket.connectionEnded((try? await closeResult.get()) ?? CloseResult(code: .abnormalClosure, reason: ""))
                    }
                    group.addTask {
                        do {
                            try await handler(socket)
                        } catch {
                            options.log(.error, "socket handler threw: \(error)")
                            if !socket.isDone { await socket.disconnect(.internalError, reason: "handler error") }
                        }
                        if !socket.isDone { await socket.disconnect(.normalClosure) }
                    }
                    await group.waitForAll()
                }
            }
        }
    }

    private static func pump(_ inbound: NIOAsyncChannelInboundStream<WebSocketInbound>, into socket: Socket<Message>, codec: SocketCodec<Message>) async {
        do {
            for try await item in inbound {
                switch item {
                case .text(let payload), .binary(let payload):
                    let isText: Bool
                    if case .text = item { isText = true } else { isText = false }
                    do {
                        let message = try codec.decode(isText, payload)
                        await socket.inbox.push(message: message)
                    } catch .unsupportedType(let reason) {
                        let error = WebSocketError(code: .unsupportedData, reason: reason)
                        socket.inbox.push(error: error)
                        await socket.disconnect(.unsupportedData, reason: reason)
                    } catch .malformed(let reason) {
                        socket.inbox.push(error: WebSocketError(code: .invalidPayload, reason: reason))
                    }
                case .closed:
                    break
                case .failed(let error):
                    socket.inbox.push(error: error)
                }
            }
        } catch {
            socket.inbox.push(error: WebSocketError(code: .abnormalClosure, reason: "\(error)"))
        }
    }
}
