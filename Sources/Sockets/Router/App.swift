public import Logging
import NIOCore
import NIOConcurrencyHelpers
public import NIOHTTP1
import NIOPosix

/// A small Martini-like web app: routes with handler chains, middleware for every route, and
/// WebSocket routes whose handler receives a ``Socket``.
///
/// ```swift
/// let app = App()
/// app.get("/") { _ in .text("hello") }
/// app.get("/sockets/rooms/:name", Sockets.json(Message.self)) { params, socket in
///     for await event in socket.events { ... }
/// }
/// try await app.run(host: "127.0.0.1", port: 3000)
/// ```
/// Routes are matched in the order they were added. A path that matches a route of another
/// method answers 405 with `Allow`; no match answers 404. Add routes before starting the app.
public final class App: Sendable {
    let core: AppCore

    /// Creates an app.
    ///
    /// - Parameters:
    ///   - logger: the app's logger (request logging in ``Classic``, server lifetime).
    ///   - maxBodySize: the largest request body accepted; larger ones answer 413. Default 1 MiB.
    public init(logger: Logger = Logger(label: "sockets.app"), maxBodySize: Int = 1 << 20) {
        core = AppCore(logger: logger, maxBodySize: maxBodySize)
    }

    /// Adds middleware that runs around every HTTP route, in the order added.
    public func use(_ middleware: @escaping Middleware) {
        core.state.withLockedValue { $0.middleware.append(middleware) }
    }

    /// Adds a route for `method` (or every method when `nil`) with a chain of handlers.
    ///
    /// - Throws: ``RouteError`` for a malformed pattern.
    public func add(_ method: HTTPMethod?, _ path: String, _ handlers: [Handler]) throws(RouteError) {
        let route = Route(method: method, pattern: try PathPattern(path), target: .http(handlers))
        core.state.withLockedValue { $0.routes.append(route) }
    }

    /// A GET route. A malformed pattern is a programming error and stops the program (use
    /// ``add(_:_:_:)`` to handle it).
    public func get(_ path: String, _ handlers: Handler...) { mustAdd(.GET, path, handlers) }
    /// A POST route.
    public func post(_ path: String, _ handlers: Handler...) { mustAdd(.POST, path, handlers) }
    /// A PUT route.
    public func put(_ path: String, _ handlers: Handler...) { mustAdd(.PUT, path, handlers) }
    /// A PATCH route.
    public func patch(_ path: String, _ handlers: Handler...) { mustAdd(.PATCH, path, handlers) }
    /// A DELETE route.
    public func delete(_ path: String, _ handlers: Handler...) { mustAdd(.DELETE, path, handlers) }
    /// A route for every method.
    public func any(_ path: String, _ handlers: Handler...) { mustAdd(nil, path, handlers) }

    private func mustAdd(_ method: HTTPMethod?, _ path: String, _ handlers: [Handler]) {
        do { try add(method, path, handlers) } catch { fatalError("\(error)") }
    }

    /// A WebSocket route: the socket middleware, then the handler that receives the path
    /// parameters and the connected ``Socket``. The handler returning closes the connection with
    /// 1000; throwing closes it with 1011.
    ///
    /// - Parameters:
    ///   - path: the route pattern, e.g. `/sockets/rooms/:name`.
    ///   - spec: ``Sockets/messages()``, ``Sockets/bytes()`` or ``Sockets/json(_:)``.
    ///   - handler: runs for each connection, in its own task.
    public func get<Message: Sendable>(
        _ path: String,
        _ spec: SocketSpec<Message>,
        _ handler: @escaping @Sendable (_ params: [String: String], _ socket: Socket<Message>) async throws -> Void
    ) {
        addSocket(nil, path, spec, handler)
    }

    /// A WebSocket route reachable whatever the method, so that a non-GET handshake gets the
    /// socket middleware's own answer (405) rather than the router's.
    public func any<Message: Sendable>(
        _ path: String,
        _ spec: SocketSpec<Message>,
        _ handler: @escaping @Sendable (_ params: [String: String], _ socket: Socket<Message>) async throws -> Void
    ) {
        addSocket(nil, path, spec, handler)
    }

    private func addSocket<Message: Sendable>(
        _ method: HTTPMethod?, _ path: String, _ spec: SocketSpec<Message>,
        _ handler: @escaping @Sendable (_ params: [String: String], _ socket: Socket<Message>) async throws -> Void
    ) {
        let endpoint = SocketEndpoint(options: spec.options) { channel, request in
            try spec.start(channel: channel, request: request) { socket in try await handler(request.params, socket) }
        }
        do {
            // A socket route answers every method itself: the handshake check says 405 for
            // anything but GET, with the reason in the body, as the reference does.
            let route = Route(method: method, pattern: try PathPattern(path), target: .socket(endpoint))
            core.state.withLockedValue { $0.routes.append(route) }
        } catch {
            fatalError("\(error)")
        }
    }

    /// Starts serving on `host:port` (port 0 picks a free one) and returns at once.
    ///
    /// - Returns: the running server: its port, and `shutdown()`.
    public func start(host: String = "127.0.0.1", port: Int = 3000) async throws -> RunningApp {
        try await core.start(host: host, port: port)
    }

    /// Serves on `host:port` until the process gets SIGINT or SIGTERM, then shuts down gracefully
    /// (open sockets get 1001 and a completed close handshake).
    public func run(host: String = "127.0.0.1", port: Int = 3000) async throws {
        let running = try await start(host: host, port: port)
        core.logger.info("listening on http://\(host):\(running.port)")
        await SignalWaiter.wait()
        core.logger.info("shutting down")
        await running.shutdown()
    }
}

/// A started ``App``.
public struct RunningApp: Sendable {
    let core: AppCore
    /// The port it listens on.
    public let port: Int

    /// Stops accepting connections, closes every open socket with 1001 ("going away") and waits
    /// for their close handshakes (at most each route's `closeTimeout`), lets requests in progress
    /// finish, then stops the event loops.
    public func shutdown() async { await core.shutdown() }
}

final class AppCore: Sendable {
    struct State {
        var routes: [Route] = []
        var middleware: [Middleware] = []
        var group: MultiThreadedEventLoopGroup?
        var server: (any Channel)?
        var sockets: [ObjectIdentifier: (channel: any Channel, task: Task<Void, Never>, closeTimeout: Duration)] = [:]
        var httpChannels: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
    }

    let state = NIOLockedValueBox(State())
    let logger: Logger
    let maxBodySize: Int

    init(logger: Logger, maxBodySize: Int) {
        self.logger = logger
        self.maxBodySize = maxBodySize
    }

    var routes: [Route] { state.withLockedValue { $0.routes } }

    // MARK: Serving

    func start(host: String, port: Int) async throws -> RunningApp {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = WebSocketUpgrader { [self] ch, head in webSocketRoute(channel: ch, head: head) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                            if let http = try? context.pipeline.syncOperations.context(name: HTTPHandler.name) {
                                context.pipeline.syncOperations.removeHandler(context: http, promise: nil)
                            }
                        }),
                        withErrorHandling: true
                    )
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(core: self), name: HTTPHandler.name)
                    let id = ObjectIdentifier(channel)
                    state.withLockedValue { $0.httpChannels[id] = channel }
                    channel.closeFuture.whenComplete { [self] _ in _ = state.withLockedValue { $0.httpChannels.removeValue(forKey: id) } }
                }
            }
        do {
            let server = try await bootstrap.bind(host: host, port: port).get()
            state.withLockedValue {
                $0.group = group
                $0.server = server
            }
            return RunningApp(core: self, port: server.localAddress?.port ?? port)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    func shutdown() async {
        let (server, sockets, group) = state.withLockedValue { s in
            s.shuttingDown = true
            return (s.server, s.sockets.values.map { $0 }, s.group)
        }
        try? await server?.close()
        for s in sockets {
            s.channel.writeAndFlush(WebSocketOutbound.close(.goingAway, reason: "server shutting down"), promise: nil)
        }
        // Each close handshake ends within its route's closeTimeout; a handler that ignores the
        // end of its connection is cancelled and its channel closed after that grace period.
        let grace = sockets.isEmpty ? Duration.zero : .seconds(1) + .seconds(60).clamped(to: sockets.map { $0.closeTimeout })
        let enforcer = Task {
            try? await Task.sleep(for: grace)
            for s in sockets {
                s.channel.close(promise: nil)
                s.task.cancel()
            }
        }
        for s in sockets { await s.task.value }
        enforcer.cancel()
        let http = state.withLockedValue { Array($0.httpChannels.values) }
        for c in http { try? await c.close() }
        try? await group?.shutdownGracefully()
    }

    // MARK: Routing

    func webSocketRoute(channel: any Channel, head: HTTPRequestHead) -> WebSocketRoute? {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard case .found(let route, let params) = routes.match(method: head.method, path: path),
              case .socket(let endpoint) = route.target else { return nil }
        return WebSocketRoute(validated: endpoint.options) { [self] channel, head, acceptance in
            let request = SocketRequest(head: head, params: params, remoteAddress: channel.remoteAddress, subprotocol: acceptance.subprotocol)
            let work = try endpoint.start(channel, request)
            let id = ObjectIdentifier(channel)
            // Registered before the task can finish, so the removal below always finds it.
            state.withLockedValue { s in
                let task = Task {
                    await work()
                    _ = self.state.withLockedValue { $0.sockets.removeValue(forKey: id) }
                }
                s.sockets[id] = (channel, task, endpoint.options.closeTimeout)
            }
        }
    }

    /// Answers an HTTP request: middleware around the matched route's handler chain.
    func respond(to request: Request) async -> Response {
        let (routes, middleware) = state.withLockedValue { ($0.routes, $0.middleware) }
        let path = request.path[...]
        let endpoint: Next = { request in
            switch routes.match(method: request.method, path: path) {
            case .notFound:
                return .text("404 page not found", status: .notFound)
            case .methodNotAllowed(let allowed):
                var r = Response.text("405 method not allowed", status: .methodNotAllowed)
                r.headers.add(name: "Allow", value: allowed.map(\.rawValue).joined(separator: ", "))
                return r
            case .found(let route, let params):
                var request = request
                request.params = params
                switch route.target {
                case .socket(let endpoint):
                    // The upgrade did not happen, so the handshake was refused (or this was not
                    // the connection's first request): answer with the reason.
                    switch Handshake.evaluate(request.head, options: endpoint.options) {
                    case .failure(let refusal):
                        endpoint.options.log(.warning, "websocket handshake refused: \(refusal)", metadata: ["uri": "\(request.head.uri)"])
                        var r = Response.text(refusal.reason + "\n", status: refusal.status)
                        r.headers.add(contentsOf: refusal.headers)
                        return r
                    case .success:
                        return .text("WebSocket upgrade must be the first request on a connection\n", status: .badRequest)
                    }
                case .http(let handlers):
                    for h in handlers {
                        if let response = try await h(request) { return response }
                    }
                    return .text("404 page not found", status: .notFound)
                }
            }
        }
        let chain = middleware.reversed().reduce(endpoint) { next, m in
            { request in try await m(request, next) }
        }
        do {
            return try await chain(request)
        } catch {
            logger.info("handler error, answered 500: \(error)", metadata: ["uri": "\(request.head.uri)"])
            return .text("500 internal server error", status: .internalServerError)
        }
    }
}

extension WebSocketRoute {
    init(validated options: Options, onUpgrade: @escaping @Sendable (_ channel: any Channel, _ request: HTTPRequestHead, _ acceptance: HandshakeAcceptance) throws -> Void) {
        self.options = options
        self.onUpgrade = onUpgrade
    }
}

/// The HTTP side of a connection: collects a request, lets the app answer it, writes the answer.
final class HTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPServerResponsePart
    static let name = "sockets.http"

    private let core: AppCore
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false
    private var busy = false
    private var queued: [HTTPServerRequestPart] = []
    private var readPending = false

    init(core: AppCore) { self.core = core }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if busy {
            queued.append(part)
            return
        }
        handle(context: context, part)
    }

    private func handle(context: ChannelHandlerContext, _ part: HTTPServerRequestPart) {
        switch part {
        case .head(let h):
            head = h
            body.clear()
            tooLarge = false
        case .body(var chunk):
            if body.readableBytes + chunk.readableBytes > core.maxBodySize {
                tooLarge = true
            } else if !tooLarge {
                body.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            busy = true
            if tooLarge {
                write(context: context, head: head, response: .text("413 request body too large", status: .payloadTooLarge))
                return
            }
            let request = Request(head: head, body: body, remoteAddress: context.channel.remoteAddress)
            body = ByteBuffer()
            let core = self.core
            let promise = context.eventLoop.makePromise(of: Response.self)
            promise.completeWithTask { await core.respond(to: request) }
            promise.futureResult.assumeIsolated().whenSuccess { response in
                self.write(context: context, head: head, response: response)
            }
        }
    }

    private func write(context: ChannelHandlerContext, head: HTTPRequestHead, response: Response) {
        var responseHead = HTTPResponseHead(version: head.version, status: response.status, headers: response.headers)
        responseHead.headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        let keepAlive = head.isKeepAlive && !tooLarge
        if !keepAlive { responseHead.headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if head.method != .HEAD && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        busy = false
        while !busy, !queued.isEmpty {
            handle(context: context, queued.removeFirst())
        }
        if !busy && readPending {
            readPending = false
            context.read()
        }
    }

    /// A refused or unrouted upgrade is followed by its request, which gets its answer then.
    /// Anything else (a malformed or oversized request head, whose 400 NIO's protocol error
    /// handler has already written; an I/O error) ends the connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HandshakeRefusal || error is WebSocketUpgrader.NoRoute { return }
        if !(error is HTTPParserError) {
            core.logger.debug("HTTP connection error: \(error)")
        }
        context.close(promise: nil)
    }

    /// Holds reads while a request is being answered, so pipelined requests cannot pile up.
    func read(context: ChannelHandlerContext) {
        if busy {
            readPending = true
        } else {
            context.read()
        }
    }
}

extension Duration {
    /// The largest of `values`, or self when there are none.
    fileprivate func clamped(to values: [Duration]) -> Duration { values.max() ?? self }
}
