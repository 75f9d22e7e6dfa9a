import Logging
import NIOConcurrencyHelpers
public import NIOCore
public import NIOHTTP1

/// A WebSocket route for a ``WebSocketUpgrader``: the connection's configuration, the handshake
/// policy (its origin pattern compiled once, here), and what to do with the upgraded channel.
public struct WebSocketRoute: Sendable {
    /// Limits, timers, compression and logging of the route's connections.
    public let configuration: WebSocketConfiguration
    /// Origin rules and subprotocols.
    public let handshake: HandshakePolicy
    /// The compiled origin check; nil when any origin is allowed.
    let origin: OriginMatcher?
    /// The event-loop callback API of the route's connections, if it uses it.
    public let behavior: WebSocketBehavior?
    /// Called on the channel's event loop once the 101 response is written and the
    /// ``WebSocketHandler`` is in the pipeline: add your own handler after it, or wrap the channel.
    public let onUpgrade: @Sendable (_ channel: any Channel, _ request: HTTPRequestHead, _ acceptance: HandshakeAcceptance) throws -> Void

    /// Creates a route, checking the configuration and compiling the origin pattern.
    ///
    /// - Parameters:
    ///   - configuration: validated here.
    ///   - handshake: validated and compiled here.
    ///   - onUpgrade: what to do with the upgraded channel.
    /// - Throws: ``OptionsError`` naming the wrong option.
    public init(
        configuration: WebSocketConfiguration = WebSocketConfiguration(),
        handshake: HandshakePolicy = HandshakePolicy(),
        onUpgrade: @escaping @Sendable (_ channel: any Channel, _ request: HTTPRequestHead, _ acceptance: HandshakeAcceptance) throws -> Void
    ) throws(OptionsError) {
        try configuration.validate()
        self.origin = try handshake.compileOrigin()
        self.configuration = configuration
        self.handshake = handshake
        self.behavior = nil
        self.onUpgrade = onUpgrade
    }

    /// Creates a route whose connections use the event-loop callback API.
    ///
    /// - Parameters:
    ///   - configuration: validated here.
    ///   - handshake: validated and compiled here.
    ///   - behavior: what to do on open, for each message, on drain and on close.
    /// - Throws: ``OptionsError`` naming the wrong option.
    public init(configuration: WebSocketConfiguration = WebSocketConfiguration(), handshake: HandshakePolicy = HandshakePolicy(),
                behavior: WebSocketBehavior) throws(OptionsError) {
        try configuration.validate()
        self.origin = try handshake.compileOrigin()
        self.configuration = configuration
        self.handshake = handshake
        self.behavior = behavior
        self.onUpgrade = { _, _, _ in }
    }

    /// The same route with another `onUpgrade` (no second validation or compilation).
    package func with(onUpgrade: @escaping @Sendable (_ channel: any Channel, _ request: HTTPRequestHead, _ acceptance: HandshakeAcceptance) throws -> Void) -> WebSocketRoute {
        WebSocketRoute(configuration: configuration, handshake: handshake, origin: origin, behavior: behavior, onUpgrade: onUpgrade)
    }

    private init(configuration: WebSocketConfiguration, handshake: HandshakePolicy, origin: OriginMatcher?, behavior: WebSocketBehavior?,
                 onUpgrade: @escaping @Sendable (_ channel: any Channel, _ request: HTTPRequestHead, _ acceptance: HandshakeAcceptance) throws -> Void) {
        self.configuration = configuration
        self.handshake = handshake
        self.origin = origin
        self.behavior = behavior
        self.onUpgrade = onUpgrade
    }
}

/// Our WebSocket upgrader for NIO's `HTTPServerUpgradeHandler` (not NIOWebSocket's).
///
/// It evaluates the handshake once per connection (``Handshake/evaluate(_:route:)``), answers 101
/// with the accept key, the chosen subprotocol and the agreed extension, installs a
/// ``WebSocketHandler`` and hands the channel to the route. When the handshake is refused the
/// upgrade fails with a ``HandshakeRefusal`` (logged at `.warning` with the refused Origin and
/// Host), fired as an error down the pipeline before NIO passes the request on to the HTTP
/// handlers: answer it with the refusal's status, headers and reason. A request for which the
/// route closure returns nil fails with ``NoRoute`` and goes on to the HTTP handlers unchanged.
///
/// A whole server, with the channel layer's `Socket` (module `Sockets`; the runnable version is
/// `examples/nio-server`). Two things matter: build the route with `try` when the server starts
/// (a `try?` would turn options that do not validate into a silent 404), and remove your HTTP
/// handler in the upgrade's completion handler — left in the pipeline, it would be handed the
/// WebSocket bytes and stop the process (`tried to decode as type HTTPPart<…> but found IOData`).
///
/// ```swift
/// let echo = try Sockets.messages(Options(allowAnyOrigin: true)).route { socket in
///     for await message in socket.receiver { try await socket.send(message) }
/// }
/// let upgrader = WebSocketUpgrader(route: { _, head in
///     RequestTarget.path(of: head.uri) == "/echo" ? echo : nil
/// })
/// let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
///     .childChannelInitializer { channel in
///         channel.eventLoop.makeCompletedFuture {
///             let http = MyHTTPHandler() // answers plain requests, and a HandshakeRefusal in errorCaught
///             try channel.pipeline.syncOperations.configureHTTPServerPipeline(withServerUpgrade: (
///                 upgraders: [upgrader],
///                 completionHandler: { context in
///                     context.pipeline.removeHandler(name: "http", promise: nil)
///                 }))
///             try channel.pipeline.syncOperations.addHandler(http, name: "http")
///         }
///     }
///     .bind(host: "127.0.0.1", port: 8080).get()
/// ```
public struct WebSocketUpgrader: HTTPServerProtocolUpgrader, Sendable {
    /// Always `"websocket"`.
    public let supportedProtocol = "websocket"
    /// Empty: the required headers are checked by ``Handshake``, which can then answer with the
    /// right status instead of silently not upgrading.
    public let requiredUpgradeHeaders: [String] = []

    private let resolve: @Sendable (any Channel, HTTPRequestHead) -> EventLoopFuture<(WebSocketRoute, HandshakeAcceptance)?>
    private let pending = Pending()

    /// Creates an upgrader that picks a route synchronously.
    ///
    /// - Parameter route: picks the route for a request, or `nil` when the request's path has no
    ///   WebSocket route. Called once per upgrade request, on the channel's event loop.
    public init(route: @escaping @Sendable (any Channel, HTTPRequestHead) -> WebSocketRoute?) {
        self.resolve = { channel, head in
            guard let route = route(channel, head) else { return channel.eventLoop.makeSucceededFuture(nil) }
            switch Handshake.evaluate(head, route: route) {
            case .success(let acceptance):
                route.configuration.metrics.handshakeAccepted()
                return channel.eventLoop.makeSucceededFuture((route, acceptance))
            case .failure(let refusal):
                route.configuration.metrics.handshakeRefused(status: Int(refusal.status.code))
                Handshake.logRefusal(refusal, head: head, remoteAddress: channel.remoteAddress, configuration: route.configuration)
                return channel.eventLoop.makeFailedFuture(refusal)
            }
        }
    }

    /// Creates an upgrader whose routing may wait (authentication, a lookup) and evaluates the
    /// handshake itself (``Handshake/evaluate(_:route:)``).
    ///
    /// - Parameter resolve: succeeds with the route and the acceptance to upgrade with, with `nil`
    ///   for a request that is not for a WebSocket route, or fails with the error the HTTP handlers
    ///   will see (for example a ``HandshakeRefusal``) to refuse the upgrade.
    public init(resolve: @escaping @Sendable (any Channel, HTTPRequestHead) -> EventLoopFuture<(WebSocketRoute, HandshakeAcceptance)?>) {
        self.resolve = resolve
    }

    /// The error an upgrade fails with when no route takes the request.
    public struct NoRoute: Error, Sendable {}

    /// Checks the handshake and builds the 101 response's headers.
    public func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        let pending = self.pending
        return resolve(channel, upgradeRequest).flatMapThrowing { decision in
            guard let (route, acceptance) = decision else { throw NoRoute() }
            pending.put(channel, route: route, acceptance: acceptance)
            var headers = initialResponseHeaders
            acceptance.addResponseHeaders(to: &headers)
            return headers
        }
    }

    /// Installs the ``WebSocketHandler`` and hands the channel to the route, with the handshake
    /// evaluated in ``buildUpgradeResponse(channel:upgradeRequest:initialResponseHeaders:)``.
    public func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        guard let (route, acceptance) = pending.take(channel) else {
            return context.eventLoop.makeFailedFuture(NoRoute())
        }
        do {
            try Self.install(route, acceptance: acceptance, request: upgradeRequest, on: channel)
            return context.eventLoop.makeSucceededVoidFuture()
        } catch {
            return context.eventLoop.makeFailedFuture(error)
        }
    }

    /// The upgrade proper, once the 101 is written: adds a ``WebSocketHandler`` at the end of the
    /// channel's pipeline and hands the channel to the route. Shared with servers that perform the
    /// upgrade themselves (the app's HTTP handler upgrades on any request of a connection). Call
    /// it on the channel's event loop. The connection's lines carry its number, remote address and
    /// path as metadata.
    package static func install(_ route: WebSocketRoute, acceptance: HandshakeAcceptance, request: HTTPRequestHead,
                                on channel: any Channel) throws {
        let configuration = route.configuration.forConnection(remoteAddress: channel.remoteAddress, uri: request.uri)
        let handler = try WebSocketHandler(configuration: configuration, compression: acceptance.compression, behavior: route.behavior)
        try channel.pipeline.syncOperations.addHandler(handler)
        do {
            try route.onUpgrade(channel, request, acceptance)
        } catch {
            configuration.log(.error, "websocket upgrade failed: \(error)", metadata: ["error": "\(error)"])
            throw error
        }
        configuration.log(.info, "websocket connected: \(request.uri)")
    }

    /// Handshakes evaluated and answered, waiting for `upgrade`, by channel (an upgrader may be
    /// shared by many channels). An entry lives from the 101 to the upgrade, or to the channel's
    /// close if the upgrade never comes.
    private final class Pending: Sendable {
        private let entries = NIOLockedValueBox<[ObjectIdentifier: (WebSocketRoute, HandshakeAcceptance)]>([:])

        func put(_ channel: any Channel, route: WebSocketRoute, acceptance: HandshakeAcceptance) {
            let id = ObjectIdentifier(channel)
            entries.withLockedValue { $0[id] = (route, acceptance) }
            channel.closeFuture.whenComplete { [entries] _ in _ = entries.withLockedValue { $0.removeValue(forKey: id) } }
        }

        func take(_ channel: any Channel) -> (WebSocketRoute, HandshakeAcceptance)? {
            entries.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
        }
    }
}
