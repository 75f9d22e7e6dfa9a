import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Sockets

/// A Hummingbird 2 child channel that serves HTTP/1 with Hummingbird's router and upgrades
/// WebSocket requests to Sockets routes (the channel layer: `Socket<T>`), through NIO's typed
/// upgrade and Sockets' `TypedWebSocketUpgrader`. Use it with ``HTTPServerBuilder/sockets(route:)``.
struct SocketsHTTP1Channel: HTTPChannelHandler {
    /// What a connection became.
    enum UpgradeResult: Sendable {
        /// A WebSocket: the route's socket task runs it; the channel closes when it is over.
        case webSocket(any Channel)
        /// Plain HTTP for the router (also a refused handshake, already answered by Sockets).
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    /// Picks the Sockets route for an upgrade request, or nil to let the router answer it.
    let route: @Sendable (HTTPRequestHead) -> WebSocketRoute?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let route = self.route
            let upgrader = TypedWebSocketUpgrader<UpgradeResult>(
                route: { _, head in route(head) },
                upgraded: { channel, _ in channel.eventLoop.makeSucceededFuture(.webSocket(channel)) })
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                configuration: .init(upgradeConfiguration: upgrader.configuration(notUpgrading: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        return .notUpgraded(try NIOAsyncChannel(wrappingChannelSynchronously: channel,
                                                                configuration: .init(isOutboundHalfClosureEnabled: true)))
                    }
                })))
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .webSocket(let channel):
                try await channel.closeFuture.get()
            case .notUpgraded(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            }
        } catch {
            logger.debug("connection ended: \(error)")
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 for the router, and WebSocket upgrades for the Sockets routes `route` picks.
    ///
    /// - Parameter route: the Sockets route for an upgrade request (built once, with `try`, from
    ///   `SocketSpec.route(_:)`), or nil for the router to answer the request.
    static func sockets(route: @escaping @Sendable (HTTPRequestHead) -> WebSocketRoute?) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in SocketsHTTP1Channel(responder: responder, route: route) }
    }
}
