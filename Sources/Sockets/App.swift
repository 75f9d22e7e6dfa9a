public import Logging
public import NIOHTTP1

/// A small Martini-like web app: routes with handler chains, middleware for every route, and
/// WebSocket routes whose handler receives a ``Socket``.
///
/// ```swift
/// let app = App()
/// app.get("/") { _ in .text("hello") }
/// app.get("/sockets/rooms/:name", requireUser, Sockets.json(Message.self)) { params, socket in
///     for await event in socket.events { ... }
/// }
/// try await app.run(host: "127.0.0.1", port: 3000)
/// ```
/// Routes are compiled into a trie when the app starts: a literal segment wins over a `:param`,
/// which wins over a catch-all. A path that matches only routes of other methods answers 405
/// with `Allow`; no match answers 404. Middleware added with ``use(_:)`` and the handlers before
/// a socket middleware run before the upgrade, so they can refuse it with any response (401, 403).
public final class App: Sendable {
    let core: AppCore

    /// Creates an app.
    ///
    /// - Parameters:
    ///   - logger: the app's logger: request logging in ``Classic``, server lifetime, and every
    ///     socket route's connection lines, unless the route's ``Options/logger`` is set.
    ///   - maxBodySize: the largest request body accepted; larger ones answer 413. Default 1 MiB.
    ///   - shutdownTimeout: how long a graceful shutdown waits for close handshakes and socket
    ///     handlers before closing what is left. Default `nil`: 1 s more than the longest
    ///     `closeTimeout` of the open sockets.
    ///   - http: the HTTP connections' timeouts and head limits (``HTTPOptions``; defaults 60 s
    ///     idle, 10 s for a request head, 8 KiB request line, 16 KiB head). Checked when the app
    ///     starts.
    public init(logger: Logger = Logger(label: "sockets.app"), maxBodySize: Int = 1 << 20, shutdownTimeout: Duration? = nil,
                http: HTTPOptions = HTTPOptions()) {
        core = AppCore(logger: logger, maxBodySize: maxBodySize, shutdownTimeout: shutdownTimeout, http: http)
    }

    /// Adds middleware that runs around every route, in the order added: around HTTP handlers,
    /// and before the upgrade of a socket route (the response to an accepted upgrade is a 101).
    public func use(_ middleware: @escaping Middleware) {
        core.add(middleware: middleware)
    }

    /// Adds a route for `method` (or every method when `nil`) with a chain of handlers.
    ///
    /// - Throws: ``RouteError`` for a malformed pattern.
    public func add(_ method: HTTPMethod?, _ path: String, _ handlers: [Handler]) throws(RouteError) {
        core.add(Route(method: method, pattern: try PathPattern(path), target: .http(handlers)))
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

    /// The handler of a socket route: the path parameters and the connected socket. Returning
    /// closes the connection with 1000; throwing closes it with 1011.
    public typealias SocketHandler<Message: Sendable> = @Sendable (_ params: [String: String], _ socket: Socket<Message>) async throws -> Void

    /// A WebSocket route: the socket middleware, then the handler that receives the path
    /// parameters and the connected ``Socket``. A socket route answers every method itself: the
    /// handshake check says 405 for anything but GET, with the reason in the body.
    ///
    /// - Parameters:
    ///   - path: the route pattern, e.g. `/sockets/rooms/:name`.
    ///   - spec: ``Sockets/messages()``, ``Sockets/bytes()``, ``Sockets/json(_:)`` or ``Sockets/raw()``.
    ///   - handler: runs for each connection, in its own task.
    public func get<Message: Sendable>(_ path: String, _ spec: SocketSpec<Message>, _ handler: @escaping SocketHandler<Message>) {
        addSocket(path, [], spec, handler)
    }

    /// A WebSocket route with a handler before the upgrade, as in the reference's Martini chains:
    /// `app.get("/rooms/:name", requireUser, Sockets.json(M.self)) { params, socket in … }`.
    /// The handler may answer (the client gets that response instead of the upgrade) or return
    /// nil to pass on.
    public func get<Message: Sendable>(_ path: String, _ h1: @escaping Handler, _ spec: SocketSpec<Message>,
                                       _ handler: @escaping SocketHandler<Message>) {
        addSocket(path, [h1], spec, handler)
    }

    /// A WebSocket route with two handlers before the upgrade.
    public func get<Message: Sendable>(_ path: String, _ h1: @escaping Handler, _ h2: @escaping Handler, _ spec: SocketSpec<Message>,
                                       _ handler: @escaping SocketHandler<Message>) {
        addSocket(path, [h1, h2], spec, handler)
    }

    /// A WebSocket route with any number of handlers before the upgrade.
    public func get<Message: Sendable>(_ path: String, before handlers: [Handler], _ spec: SocketSpec<Message>,
                                       _ handler: @escaping SocketHandler<Message>) {
        addSocket(path, handlers, spec, handler)
    }

    /// A WebSocket route; the same as the `get` without handlers before the upgrade.
    public func any<Message: Sendable>(_ path: String, _ spec: SocketSpec<Message>, _ handler: @escaping SocketHandler<Message>) {
        addSocket(path, [], spec, handler)
    }

    /// A WebSocket route on the event-loop callback API: the behaviour's closures run on each
    /// connection's event loop, synchronously, for every message of a read, and reply with
    /// `connection.send(_:)`, which never suspends; everything sent during one read is flushed
    /// once. The fastest path; use ``get(_:_:_:)`` for the channel API (`Socket`).
    ///
    /// ```swift
    /// app.ws("/echo", Options(allowAnyOrigin: true), WebSocketBehavior(message: { connection, message in
    ///     connection.send(message)
    /// }))
    /// ```
    ///
    /// - Parameters:
    ///   - path: the route pattern.
    ///   - options: limits, timers, origin rules (the channel buffers do not apply).
    ///   - handlers: handlers that run before the upgrade and may answer instead (authentication).
    ///   - behavior: open, message, drain and close callbacks.
    public func ws(_ path: String, _ options: Options = Options(), before handlers: [Handler] = [], _ behavior: WebSocketBehavior) {
        let options = withAppLogger(options)
        do {
            let route = try WebSocketRoute(configuration: options.configuration, handshake: options.handshake, behavior: behavior)
            try options.validate()
            // The handler runs the behaviour: no task per connection.
            let endpoint = SocketEndpoint(options: options, route: route) { _, _ in nil }
            core.add(Route(method: nil, pattern: try PathPattern(path), target: .socket(handlers, endpoint)))
        } catch {
            fatalError("\(error)")
        }
    }

    private func addSocket<Message: Sendable>(_ path: String, _ handlers: [Handler], _ spec: SocketSpec<Message>,
                                              _ handler: @escaping SocketHandler<Message>) {
        let spec = SocketSpec(checked: spec.codec, options: withAppLogger(spec.options))
        do {
            let endpoint = SocketEndpoint(options: spec.options, route: try spec.options.route()) { channel, request in
                try spec.start(channel: channel, request: request, handler: .params(handler))
            }
            core.add(Route(method: nil, pattern: try PathPattern(path), target: .socket(handlers, endpoint)))
        } catch {
            fatalError("\(error)")
        }
    }

    /// The route's options with the app's logger, unless the route set one.
    private func withAppLogger(_ options: Options) -> Options {
        guard !options.hasLogger else { return options }
        var o = options
        o.configuration.logger = core.logger
        return o
    }

    /// Starts serving on `host:port` (port 0 picks a free one) and returns at once.
    ///
    /// - Parameters:
    ///   - host: the address to bind. Default `127.0.0.1`.
    ///   - port: the port (0 picks a free one). Default 3000.
    ///   - tls: serve `https://` and `wss://` with this certificate (``ServerTLS``). Default
    ///     `nil`: plain HTTP.
    /// - Returns: the running server: its port, and `shutdown()`.
    /// - Throws: `OptionsError` for invalid ``HTTPOptions``; ``RouteError`` when two routes
    ///   conflict; the bind error.
    public func start(host: String = "127.0.0.1", port: Int = 3000, tls: ServerTLS? = nil) async throws -> RunningApp {
        try await core.start(host: host, port: port, tls: tls)
    }

    /// The app as a swift-service-lifecycle `Service` serving `host:port`, to run in your own
    /// `ServiceGroup` beside other services; a graceful shutdown of the group shuts it down.
    ///
    /// - Parameters:
    ///   - host: the address to bind.
    ///   - port: the port (0 picks a free one).
    ///   - tls: serve `https://` and `wss://` with this certificate. Default `nil`: plain HTTP.
    ///   - onListening: called with the port once the server listens.
    public func service(host: String = "127.0.0.1", port: Int = 3000, tls: ServerTLS? = nil,
                        onListening: @escaping @Sendable (_ port: Int) -> Void = { _ in }) -> AppService {
        AppService(app: self, host: host, port: port, tls: tls, onListening: onListening)
    }

    /// Serves on `host:port` until the process gets SIGINT or SIGTERM, then shuts down gracefully
    /// (new upgrades answered 503, open sockets sent 1001 and given the shutdown timeout to close).
    /// Runs the app's ``service(host:port:tls:onListening:)`` in a `ServiceGroup`.
    ///
    /// - Parameters:
    ///   - host: the address to bind.
    ///   - port: the port (0 picks a free one).
    ///   - tls: serve `https://` and `wss://` with this certificate (``ServerTLS``). Default
    ///     `nil`: plain HTTP.
    ///   - onListening: called with the port once the server listens.
    /// - Throws: the bind error, `OptionsError` for invalid ``HTTPOptions``, or ``RouteError`` when two routes conflict.
    public func run(host: String = "127.0.0.1", port: Int = 3000, tls: ServerTLS? = nil,
                    onListening: @escaping @Sendable (_ port: Int) -> Void = { _ in }) async throws {
        try await AppService.runGroup(service(host: host, port: port, tls: tls, onListening: onListening), logger: core.logger)
    }
}

/// A started ``App``.
public struct RunningApp: Sendable {
    let core: AppCore
    /// The port it listens on.
    public let port: Int

    /// Stops accepting connections, answers new upgrades with 503, closes every open socket with
    /// 1001 ("going away") and waits for their close handshakes and handlers (at most the app's
    /// shutdown timeout), then closes what is left and stops the event loops.
    public func shutdown() async { await core.shutdown() }
}
