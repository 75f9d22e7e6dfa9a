import Logging
public import NIOCore
public import NIOHTTP1

/// What to do with an upgrade request that a ``WebSocketUpgrader`` accepts.
public struct WebSocketRoute: Sendable {
    /// The options of the route (limits, timers, origin rules, subprotocols).
    public let options: Options
    /// Called on the channel's event loop once the 101 response is written and the
    /// ``WebSocketHandler`` is in the pipeline; typically wraps the channel in a
    /// `NIOAsyncChannel<WebSocketInbound, WebSocketOutbound>`, or adds a handler of its own.
    public let onUpgrade: @Sendable (_ channel: any Channel, _ request: HTTPRequestHead, _ acceptance: HandshakeAcceptance) throws -> Void

    /// Creates a route.
    ///
    /// - Parameters:
    ///   - options: validated when the route is created.
    ///   - onUpgrade: what to do with the upgraded channel.
    /// - Throws: ``OptionsError``.
    public init(
        options: Options,
        onUpgrade: @escaping @Sendable (_ channel: any Channel, _ request: HTTPRequestHead, _ acceptance: HandshakeAcceptance) throws -> Void
    ) throws(OptionsError) {
        try options.validate()
        self.options = options
        self.onUpgrade = onUpgrade
    }
}

/// Our WebSocket upgrader for NIO's `HTTPServerUpgradeHandler` (not NIOWebSocket's).
///
/// Any SwiftNIO HTTP/1 server can install it:
/// ```swift
/// let upgrader = WebSocketUpgrader { channel, head in
///     head.uri == "/ws" ? try? WebSocketRoute(options: Options()) { channel, _, _ in
///         try channel.pipeline.syncOperations.addHandler(MyWebSocketEchoHandler())
///     } : nil
/// }
/// try channel.pipeline.syncOperations.configureHTTPServerPipeline(
///     withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
/// ```
/// It checks the handshake (``Handshake/evaluate(_:options:)``), answers 101 with the accept key
/// and the chosen subprotocol, and installs a ``WebSocketHandler``. When the handshake is refused,
/// the upgrade fails with a ``HandshakeRefusal`` (fired as an error down the pipeline) and NIO
/// passes the request on to the HTTP handlers: answer it with the refusal's status and reason
/// (``HandshakeRefusal/status``, ``HandshakeRefusal/reason``), or re-run
/// ``Handshake/evaluate(_:options:)``, as this library's ``App`` does.
public struct WebSocketUpgrader: HTTPServerProtocolUpgrader, Sendable {
    /// Always `"websocket"`.
    public let supportedProtocol = "websocket"
    /// Empty: the required headers are checked by ``Handshake``, which can then answer with the
    /// right status instead of silently not upgrading.
    public let requiredUpgradeHeaders: [String] = []

    private let route: @Sendable (any Channel, HTTPRequestHead) -> WebSocketRoute?

    /// Creates an upgrader.
    ///
    /// - Parameter route: picks the route for a request, or `nil` when the request's path has no
    ///   WebSocket route (the request then goes on to the HTTP handlers unchanged). It is called
    ///   twice per upgrade (when building the response and when upgrading), so keep it pure.
    public init(route: @escaping @Sendable (any Channel, HTTPRequestHead) -> WebSocketRoute?) {
        self.route = route
    }

    /// The error an upgrade fails with when no route takes the request.
    public struct NoRoute: Error, Sendable {}

    /// Checks the handshake and builds the 101 response's headers.
    public func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        guard let route = route(channel, upgradeRequest) else {
            return channel.eventLoop.makeFailedFuture(NoRoute())
        }
        switch Handshake.evaluate(upgradeRequest, options: route.options) {
        case .failure(let refusal):
            return channel.eventLoop.makeFailedFuture(refusal)
        case .success(let acceptance):
            var headers = initialResponseHeaders
            headers.replaceOrAdd(name: "Sec-WebSocket-Accept", value: acceptance.acceptValue)
            if let p = acceptance.subprotocol { headers.replaceOrAdd(name: "Sec-WebSocket-Protocol", value: p) }
            if let e = acceptance.extensions { headers.replaceOrAdd(name: "Sec-WebSocket-Extensions", value: e) }
            return channel.eventLoop.makeSucceededFuture(headers)
        }
    }

    /// Installs the ``WebSocketHandler`` and hands the channel to the route.
    public func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        guard let route = route(channel, upgradeRequest),
              case .success(let acceptance) = Handshake.evaluate(upgradeRequest, options: route.options) else {
            return context.eventLoop.makeFailedFuture(NoRoute())
        }
        do {
            let handler = try WebSocketHandler(options: route.options, compression: acceptance.compression)
            try context.pipeline.syncOperations.addHandler(handler)
            try route.onUpgrade(channel, upgradeRequest, acceptance)
            route.options.log(.info, "websocket connected: \(upgradeRequest.uri)", metadata: ["remote": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
            return context.eventLoop.makeSucceededVoidFuture()
        } catch {
            return context.eventLoop.makeFailedFuture(error)
        }
    }
}
