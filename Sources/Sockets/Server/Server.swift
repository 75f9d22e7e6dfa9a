import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

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
    let http: HTTPOptions

    init(logger: Logger, maxBodySize: Int, shutdownTimeout: Duration?, http: HTTPOptions) {
        self.logger = logger
        self.maxBodySize = maxBodySize
        self.shutdownTimeout = shutdownTimeout
        self.http = http
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

    func start(host: String, port: Int, tls: ServerTLS? = nil) async throws -> RunningApp {
        try http.validate()
        _ = try routing() // a conflict between routes is found now, not on the first request
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        // Enforced while the head is parsed: no more than this is buffered (431 when over).
        let limits = { [http] in
            var l = NIOHTTPDecoderLimitConfiguration()
            l.maxHeaderFieldSize = http.maxHeadSize
            l.maxHeaderListSize = http.maxHeadSize
            return l
        }()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 64, initial: http.initialReadSize, maximum: http.maxReadSize))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    // Our own HTTP/1 pipeline rather than configureHTTPServerPipeline: the HTTP
                    // handler upgrades on any request (NIO's upgrade handler only on the first),
                    // answers parse errors itself (431, 505, 400 with a reason) and keeps the
                    // timers; the decoder keeps the bytes after an upgrade request for the
                    // WebSocket handler.
                    let pipeline = channel.pipeline.syncOperations
                    // TLS first: everything after it (HTTP, then the WebSocket handler) sees
                    // plaintext. A failed TLS handshake closes this channel only.
                    if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls.context)) }
                    try pipeline.addHandler(HTTPBytesWatcher(), name: HTTPBytesWatcher.name)
                    try pipeline.addHandler(HTTPResponseEncoder(), name: HTTPHandler.encoderName)
                    try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes,
                                                                                    informationalResponseStrategy: .drop,
                                                                                    limitConfiguration: limits)),
                                            name: HTTPHandler.decoderName)
                    try pipeline.addHandler(HTTPHandler(core: self, options: http), name: HTTPHandler.name)
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

    private func register(_ channel: any Channel, executor: HandlerExecutor, work: @escaping @Sendable () async -> Void) {
        let id = ObjectIdentifier(channel)
        // Registered before the task can finish, so the removal below always finds it.
        state.withLockedValue { s in
            let task = executor.startTask(on: channel.eventLoop) {
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
            logger.error("route error, answered 500: \(error)")
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
            guard case .socket(_, let endpoint) = route.target else {
                return await run(request, through: routing.1, to: route.target)
            }
            if state.withLockedValue({ $0.shuttingDown }) {
                return .text("503 server shutting down\n", status: .serviceUnavailable)
            }
            var response = await run(request, through: routing.1, to: route.target)
            // An accepted handshake (on any request of the connection): the HTTP handler writes
            // the 101 and installs the socket, which this route then registers and starts.
            if response.upgrade != nil {
                response.upgradeRoute = endpoint.route.with { [self] channel, head, acceptance in
                    let socketRequest = SocketRequest(head: head, params: params, remoteAddress: channel.remoteAddress,
                                                      subprotocol: acceptance.subprotocol)
                    if let work = try endpoint.start(channel, socketRequest) {
                        register(channel, executor: endpoint.options.handlerExecutor, work: work)
                    }
                }
            }
            return response
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
                    Handshake.logRefusal(refusal, head: request.head, remoteAddress: request.remoteAddress,
                                         configuration: endpoint.route.configuration)
                    endpoint.options.configuration.metrics.handshakeRefused(status: Int(refusal.status.code))
                    var r = Response.text(refusal.reason + "\n", status: refusal.status)
                    r.headers.add(contentsOf: refusal.headers)
                    return r
                case .success(let acceptance):
                    endpoint.options.configuration.metrics.handshakeAccepted()
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
            logger.error("handler error, answered 500: \(error)", metadata: ["uri": "\(request.head.uri)"])
            return .text("500 internal server error", status: .internalServerError)
        }
    }
}
