import Logging
public import ServiceLifecycle
import UnixSignals

/// An ``App`` serving one address, as a swift-service-lifecycle `Service`: ``run()`` starts the
/// server and serves until the service group shuts down gracefully (or the task is cancelled),
/// then shuts the app down gracefully (see ``RunningApp/shutdown()``).
public struct AppService: Service {
    let app: App
    let host: String
    let port: Int
    let tls: ServerTLS?
    let onListening: @Sendable (_ port: Int) -> Void

    /// Serves until graceful shutdown.
    public func run() async throws {
        let running = try await app.start(host: host, port: port, tls: tls)
        app.core.logger.info("listening on \(tls == nil ? "http" : "https")://\(host):\(running.port)")
        onListening(running.port)
        // Returns on graceful shutdown (or cancellation): either way, shut down gracefully.
        try? await gracefulShutdown()
        app.core.logger.info("shutting down")
        await running.shutdown()
    }

    /// Runs `service` in a `ServiceGroup` that shuts it down gracefully on SIGINT or SIGTERM.
    static func runGroup(_ service: AppService, logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}
