#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import NIOCore
public import NIOPosix

extension WebSocketClient {
    /// Connects to a `ws://` or `wss://` URL and returns the same channel API a server route's
    /// handler gets: a ``Socket`` with the spec's codec.
    ///
    /// ```swift
    /// let socket = try await WebSocketClient.connect(to: URL(string: "ws://127.0.0.1:3000/echo")!,
    ///                                                Sockets.messages(),
    ///                                                options: WebSocketClientOptions(headers: ["Origin": "http://127.0.0.1:3000"]))
    /// try await socket.send("hello")
    /// for await message in socket.receiver { print(message); break }
    /// await socket.disconnect()
    /// _ = await socket.done
    /// ```
    ///
    /// The spec's ``Options`` give the limits, timers, compression offer and channel buffers,
    /// as on a server route (the origin rules and `subprotocols` there are the server's and are
    /// not used; the subprotocols offered are `options.subprotocols`). The connection stays open
    /// until ``Socket/disconnect(_:reason:)``, the server's close, or a failure; ``Socket/done``
    /// then reports the close code.
    ///
    /// - Parameters:
    ///   - url: a `ws://` or `wss://` URL.
    ///   - spec: ``Sockets/messages()``, ``Sockets/bytes()``, ``Sockets/json(_:)`` or ``Sockets/raw()``.
    ///   - options: headers, subprotocols, connect and handshake timeouts, TLS.
    ///   - eventLoopGroup: where the connection runs. Default: NIO's singleton group.
    /// - Returns: the open socket; its ``Socket/subprotocol`` is the server's choice.
    /// - Throws: `WebSocketClientError` naming what went wrong (a refused handshake, a header
    ///   that breaks RFC 6455, a timeout, TLS); `OptionsError`.
    public static func connect<Message: Sendable>(
        to url: URL, _ spec: SocketSpec<Message>, options: WebSocketClientOptions = WebSocketClientOptions(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Socket<Message> {
        try spec.options.validate()
        return try await connect(to: url, configuration: spec.options.configuration, options: options,
                                 eventLoopGroup: eventLoopGroup) { response, head, channel, handler in
            let request = SocketRequest(head: head, params: [:], remoteAddress: channel.remoteAddress, subprotocol: response.subprotocol)
            return try spec.attachSocket(to: handler, request: request, allocator: channel.allocator)
        }
    }
}
