import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The server behind an ``App``: the bootstrap, the connection registry, routing of requests and
/// upgrades through the compiled routes, and graceful shutdown.
final class AppCore: Sendable {
    struct State {
        var routes: [Route] = []
        var middleware: [Middleware] = []
        /// Compiled from `routes` when the app starts (or on first use); dropped when a route is added.
        var trie: RouterTrie?
        var group: MultiThreadedEventLoopGroup?
        var server: (any Channel)?
        /// The tasks running channel-API socket handlers, by channel (callback-API connections
        /// need none: shutdown finds them among `httpChannels`).
        var sockets: [ObjectIdentifier: (channel: any Channel, task: Task<Void, Never>)] = [:]
        var httpChannels: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
    }

    let state = NIOLockedValueBox(State())
    let logger: Logger
    let maxBodySize: Int
    let shutdownTimeout: Duration?

    init(logger: Logger, maxBodySize: Int, shutdownTimeout: Duration?) {
        self.logger = logger
        self.maxBodySize = maxBodySize
        self.shutdownTimeout = shutdownTimeout
    }

    func add(_ route: Route) {
        state.withLockedValue {
            $0.routes.append(route)
            $0.trie = nil
        }
    }

    func add(middleware: @escaping Middleware) {
        state.withLockedValue { $0.middleware.append(middleware) }
    }

    /// The compiled routes and the middleware: one lock, no copy of the route table.
    func routing() throws(RouteError) -> (RouterTrie, [Middleware]) {
        let (trie, routes, middleware) = state.withLockedValue { ($0.trie, $0.routes, $0.middleware) }
        if let trie { return (trie, middleware) }
        let compiled = try RouterTrie(routes)
        state.withLockedValue { s in if s.routes.count == routes.count { s.trie = compiled } }
        return (compiled, middleware)
    }

    // MARK: Serving

    func start(host: String, port: Int) async throws -> RunningApp {
        _ = try routing() // a conflict between routes is found now, not on the first request
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = WebSocketUpgrader(resolve: { [self] ch, head in resolveUpgrade(channel: ch, head: head) })
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
        let (server, tasks, group, routes) = state.withLockedValue { s in
            s.shuttingDown = true
            return (s.server, s.sockets.values.map { $0 }, s.group, s.routes)
        }
        try? await server?.close()
        // Every upgraded connection (channel API or callback API) gets 1001; the close goes
        // through its state machine, like any close the app starts.
        var upgraded: [any Channel] = []
        for channel in state.withLockedValue({ Array($0.httpChannels.values) }) {
            guard (try? await channel.pipeline.containsHandler(type: WebSocketHandler.self).get()) != nil else { continue }
            upgraded.append(channel)
            channel.writeAndFlush(WebSocketOutbound.close(.goingAway, reason: "server shutting down"), promise: nil)
        }
        // Each close handshake ends within its route's closeTimeout; a handler that ignores the
        // end of its connection is cancelled and its channel closed after the grace period.
        let longestCloseTimeout = routes.compactMap { r -> Duration? in
            if case .socket(_, let endpoint) = r.target { return endpoint.options.closeTimeout }
            return nil
        }.max() ?? .zero
        let grace = shutdownTimeout ?? (upgraded.isEmpty ? .zero : .seconds(1) + longestCloseTimeout)
        let closing = upgraded
        let enforcer = Task {
            try? await Task.sleep(for: grace)
            for c in closing { c.close(promise: nil) }
            for t in tasks { t.task.cancel() }
        }
        for t in tasks { await t.task.value }
        for c in upgraded { try? await c.closeFuture.get() }
        enforcer.cancel()
        let http = state.withLockedValue { Array($0.httpChannels.values) }
        for c in http { try? await c.close() }
        try? await group?.shutdownGracefully()
    }

    // MARK: Routing

    /// Decides an upgrade request, once: the route (from the trie), then the middleware and the
    /// route's handlers before the socket middleware, then the handshake check. The upgrade goes
    /// on with the acceptance; any other answer (a handler's 401, a refusal's 403, 503 while
    /// shutting down) fails it with ``UpgradeAnswered`` and the HTTP handler writes it.
    func resolveUpgrade(channel: any Channel, head: HTTPRequestHead) -> EventLoopFuture<(WebSocketRoute, HandshakeAcceptance)?> {
        let routing: (RouterTrie, [Middleware])
        do { routing = try self.routing() } catch { return channel.eventLoop.makeFailedFuture(error) }
        guard case .found(let route, let params) = routing.0.match(method: head.method, path: RequestTarget.path(of: head.uri)),
              case .socket(_, let endpoint) = route.target else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        if state.withLockedValue({ $0.shuttingDown }) {
            return channel.eventLoop.makeFailedFuture(UpgradeAnswered(response: .text("503 server shutting down\n", status: .serviceUnavailable)))
        }
        let request = Request(head: head, params: params, remoteAddress: channel.remoteAddress)
        let promise = channel.eventLoop.makePromise(of: (WebSocketRoute, HandshakeAcceptance)?.self)
        promise.completeWithTask { [self] in
            let response = await run(request, through: routing.1, to: route.target)
            guard let acceptance = response.upgrade else { throw UpgradeAnswered(response: response) }
            return (endpoint.route.with { [self] channel, head, acceptance in
                let socketRequest = SocketRequest(head: head, params: params, remoteAddress: channel.remoteAddress,
                                                  subprotocol: acceptance.subprotocol)
                if let work = try endpoint.start(channel, socketRequest) { register(channel, work: work) }
            }, acceptance)
        }
        return promise.futureResult
    }

    private func register(_ channel: any Channel, work: @escaping @Sendable () async -> Void) {
        let id = ObjectIdentifier(channel)
        // Registered before the task can finish, so the removal below always finds it.
        state.withLockedValue { s in
            let task = Task {
                await work()
                _ = self.state.withLockedValue { $0.sockets.removeValue(forKey: id) }
            }
            s.sockets[id] = (channel, task)
        }
    }

    /// Answers an HTTP request: middleware around the matched route's handler chain.
    func respond(to request: Request) async -> Response {
        let routing: (RouterTrie, [Middleware])
        do { routing = try self.routing() } catch {
            logger.info("route error, answered 500: \(error)")
            return .text("500 internal server error", status: .internalServerError)
        }
        switch routing.0.match(method: request.method, path: RequestTarget.path(of: request.head.uri)) {
        case .notFound:
            return await run(request, through: routing.1) { _ in .text("404 page not found", status: .notFound) }
        case .methodNotAllowed(let allowed):
            return await run(request, through: routing.1) { _ in
                var r = Response.text("405 method not allowed", status: .methodNotAllowed)
                r.headers.add(name: "Allow", value: allowed.map(\.rawValue).joined(separator: ", "))
                return r
            }
        case .found(let route, let params):
            var request = request
            request.params = params
            let response = await run(request, through: routing.1, to: route.target)
            // A socket route reached without an upgrade (no Upgrade header, or not the
            // connection's first request) whose handshake would pass.
            return response.upgrade == nil ? response
                : .text("WebSocket upgrade must be the first request on a connection\n", status: .badRequest)
        }
    }

    /// Middleware around a route's chain: its handlers in turn, and for a socket route then the
    /// handshake check (a refusal answers with its status and reason; an acceptance answers 101
    /// carrying it).
    private func run(_ request: Request, through middleware: [Middleware], to target: Route.Target) async -> Response {
        await run(request, through: middleware) { request in
            switch target {
            case .http(let handlers):
                for h in handlers {
                    if let response = try await h(request) { return response }
                }
                return .text("404 page not found", status: .notFound)
            case .socket(let handlers, let endpoint):
                for h in handlers {
                    if let response = try await h(request) { return response }
                }
                switch Handshake.evaluate(request.head, route: endpoint.route) {
                case .failure(let refusal):
                    endpoint.options.log(.warning, "websocket handshake refused: \(refusal)", metadata: ["uri": "\(request.head.uri)"])
                    var r = Response.text(refusal.reason + "\n", status: refusal.status)
                    r.headers.add(contentsOf: refusal.headers)
                    return r
                case .success(let acceptance):
                    var r = Response(status: .switchingProtocols)
                    r.upgrade = acceptance
                    return r
                }
            }
        }
    }

    private func run(_ request: Request, through middleware: [Middleware], _ endpoint: @escaping Next) async -> Response {
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
