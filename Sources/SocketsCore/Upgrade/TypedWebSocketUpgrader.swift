import NIOConcurrencyHelpers
public import NIOCore
public import NIOHTTP1

/// Our WebSocket upgrader for NIO's typed, async upgrade (`NIOTypedHTTPServerUpgradeHandler`,
/// set up by `configureUpgradableHTTPServerPipeline`; Hummingbird 2 uses it): the same handshake
/// checks, 101 response and ``WebSocketHandler`` as ``WebSocketUpgrader``, and an upgrade result
/// of your type for the code that runs each connection.
///
/// NIO's typed upgrade handler passes a request it did not upgrade on to the not-upgrading path
/// without its head (swift-nio issue #2632: the HTTP handlers would see an `.end` alone), and
/// without a response for a refused upgrade, so build the upgrade configuration with
/// ``configuration(notUpgrading:)``: a refused handshake (403 for an origin that is not allowed,
/// 400, 405, 426) is then answered with its status, headers and reason, and the connection is
/// closed; an upgrade request for a path without a route (`route` returned nil) reaches your
/// not-upgrading handlers whole, head included, like any other request.
///
/// ```swift
/// enum Upgraded: Sendable { case webSocket(any Channel), http(NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) }
/// let chat = try Sockets.json(Message.self, options).route { socket in … }     // `try`, not `try?`
/// let upgrader = TypedWebSocketUpgrader<Upgraded>(
///     route: { _, head in RequestTarget.path(of: head.uri) == "/chat" ? chat : nil },
///     upgraded: { channel, _ in channel.eventLoop.makeSucceededFuture(.webSocket(channel)) })
/// try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
///     configuration: .init(upgradeConfiguration: upgrader.configuration(notUpgrading: { channel in
///         channel.eventLoop.makeCompletedFuture {
///             try .http(NIOAsyncChannel(wrappingChannelSynchronously: channel))
///         }
///     })))
/// ```
/// The channel layer's task runs the socket (the route's `onUpgrade`); a `.webSocket` result can
/// simply wait for `channel.closeFuture`.
public struct TypedWebSocketUpgrader<UpgradeResult: Sendable>: NIOTypedHTTPServerProtocolUpgrader, Sendable {
    /// Always `"websocket"`.
    public let supportedProtocol = "websocket"
    /// Empty: ``Handshake`` checks the required headers and answers with the right status.
    public let requiredUpgradeHeaders: [String] = []

    private let route: @Sendable (any Channel, HTTPRequestHead) -> WebSocketRoute?
    private let upgraded: @Sendable (any Channel, HTTPRequestHead) -> EventLoopFuture<UpgradeResult>
    private let state = TypedUpgradeState()

    /// Creates an upgrader.
    ///
    /// - Parameters:
    ///   - route: picks the route for a request, or `nil` when it is not for a WebSocket route
    ///     (it then goes to the not-upgrading handler). Called once per upgrade request, on the
    ///     channel's event loop.
    ///   - upgraded: the upgrade's result, once the ``WebSocketHandler`` is installed and the
    ///     route's `onUpgrade` has run (for the channel layer: the socket's task is started).
    public init(route: @escaping @Sendable (any Channel, HTTPRequestHead) -> WebSocketRoute?,
                upgraded: @escaping @Sendable (_ channel: any Channel, _ request: HTTPRequestHead) -> EventLoopFuture<UpgradeResult>) {
        self.route = route
        self.upgraded = upgraded
    }

    /// Checks the handshake and builds the 101 response's headers; a refusal is logged and kept
    /// for ``configuration(notUpgrading:)`` to answer.
    public func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead,
                                     initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        guard let route = route(channel, upgradeRequest) else {
            state.put(channel, .notRouted(upgradeRequest))
            return channel.eventLoop.makeFailedFuture(WebSocketUpgrader.NoRoute())
        }
        switch Handshake.evaluate(upgradeRequest, route: route) {
        case .failure(let refusal):
            Handshake.logRefusal(refusal, head: upgradeRequest, remoteAddress: channel.remoteAddress, configuration: route.configuration)
            state.put(channel, .refused(refusal))
            return channel.eventLoop.makeFailedFuture(refusal)
        case .success(let acceptance):
            state.put(channel, .accepted(route, acceptance))
            var headers = initialResponseHeaders
            acceptance.addResponseHeaders(to: &headers)
            return channel.eventLoop.makeSucceededFuture(headers)
        }
    }

    /// Installs the ``WebSocketHandler``, runs the route's `onUpgrade`, then returns `upgraded`'s
    /// result.
    public func upgrade(channel: any Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<UpgradeResult> {
        guard case .accepted(let route, let acceptance)? = state.take(channel) else {
            return channel.eventLoop.makeFailedFuture(WebSocketUpgrader.NoRoute())
        }
        do {
            try WebSocketUpgrader.install(route, acceptance: acceptance, request: upgradeRequest, on: channel)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return upgraded(channel, upgradeRequest)
    }

    /// The upgrade configuration for `configureUpgradableHTTPServerPipeline` with this upgrader:
    /// a refused handshake is answered with its status, headers and reason (then the connection
    /// closes), everything else not upgraded goes to `notUpgrading` (an upgrade request without a
    /// route with its head given back).
    ///
    /// - Parameter notUpgrading: sets the channel up for plain HTTP (e.g. wraps it in a
    ///   `NIOAsyncChannel`); also called for a refused handshake, after the refusal's responder
    ///   is added, so the result type stays yours.
    public func configuration(
        notUpgrading: @escaping @Sendable (any Channel) -> EventLoopFuture<UpgradeResult>
    ) -> NIOTypedHTTPServerUpgradeConfiguration<UpgradeResult> {
        let state = self.state
        return NIOTypedHTTPServerUpgradeConfiguration(upgraders: [self]) { channel in
            do {
                switch state.take(channel) {
                case .refused(let refusal)?:
                    try channel.pipeline.syncOperations.addHandler(HandshakeRefusalResponder(refusal: refusal))
                case .notRouted(let head)?:
                    try channel.pipeline.syncOperations.addHandler(RequestHeadReplayer(head: head))
                case .accepted?, nil:
                    break
                }
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
            return notUpgrading(channel)
        }
    }
}

/// Handshakes evaluated, by channel, from `buildUpgradeResponse` to `upgrade` (or to the
/// not-upgrading handler for a refusal), or to the channel's close.
private final class TypedUpgradeState: Sendable {
    enum Entry: Sendable {
        case accepted(WebSocketRoute, HandshakeAcceptance)
        case refused(HandshakeRefusal)
        case notRouted(HTTPRequestHead)
    }
    private let entries = NIOLockedValueBox<[ObjectIdentifier: Entry]>([:])

    func put(_ channel: any Channel, _ entry: Entry) {
        let id = ObjectIdentifier(channel)
        entries.withLockedValue { $0[id] = entry }
        channel.closeFuture.whenComplete { [entries] _ in _ = entries.withLockedValue { $0.removeValue(forKey: id) } }
    }

    func take(_ channel: any Channel) -> Entry? {
        entries.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}

/// Answers the request of a refused handshake with the refusal (status, headers, the reason as
/// the body, `Connection: close`) and closes the connection; nothing reaches the handlers after it.
final class HandshakeRefusalResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let refusal: HandshakeRefusal
    private var answered = false

    init(refusal: HandshakeRefusal) { self.refusal = refusal }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data), !answered else { return }
        answered = true
        let body = context.channel.allocator.buffer(string: refusal.reason + "\n")
        var headers = refusal.headers
        headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.replaceOrAdd(name: "Content-Length", value: "\(body.readableBytes)")
        headers.replaceOrAdd(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: refusal.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

@available(*, unavailable)
extension HandshakeRefusalResponder: Sendable {}

/// Gives the HTTP handlers back the head of an upgrade request that no route took, which NIO's
/// typed upgrade handler keeps (swift-nio #2632): before the request's `.end` (or, if NIO kept
/// that too, with an `.end` of its own before the next request's first part).
final class RequestHeadReplayer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    private var head: HTTPRequestHead?

    init(head: HTTPRequestHead) { self.head = head }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let head {
            self.head = nil
            context.fireChannelRead(wrapInboundOut(.head(head)))
            if case .end = unwrapInboundIn(data) {} else { context.fireChannelRead(wrapInboundOut(.end(nil))) }
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

@available(*, unavailable)
extension RequestHeadReplayer: Sendable {}
