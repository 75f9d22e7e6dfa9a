import ArgumentParser
import Sockets

/// sockets-echo: echoes every text and binary message on every path; any or no Origin accepted.
/// For conformance and load testing.
@main
struct SocketsEcho: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sockets-echo",
        abstract: "Echoes every text and binary message on every path (any Origin): for conformance and load tests.")

    enum API: String, ExpressibleByArgument, CaseIterable {
        /// The event-loop callback API: each message echoed from its read, one flush per read.
        case callback
        /// The channel API: `Socket<WebSocketMessage>`, a `for await` loop and `send`.
        case channels
    }

    enum Compression: String, ExpressibleByArgument, CaseIterable {
        case off, on, shared, small, dedicated

        func settings(compressor: CompressionSettings.Compressor?,
                      decompressor: CompressionSettings.Decompressor?) -> CompressionSettings? {
            switch self {
            case .off: return nil
            case .on: return CompressionSettings() // dedicated, window 15 both ways
            case .shared: return .shared // one deflater per thread, inflaters lent per message
            case .small: return CompressionSettings(windowBits: 9, peerWindowBits: 9) // 512-byte windows
            case .dedicated:
                var s = CompressionSettings.dedicated() // its defaults for what is not given
                if let compressor { s.windowBits = compressor.windowBits }
                if let decompressor { s.peerWindowBits = decompressor.windowBits }
                return s
            }
        }
    }

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0 picks a free one).")
    var port = 9001

    @Option(help: "Which API echoes: callback (the event-loop callback API) or channels (Socket and for await).")
    var api: API = .callback

    @Option(help: "The largest message accepted and sent, in bytes.")
    var maxMessageSize = 16 << 20

    @Option(help: "permessage-deflate: off, on (dedicated, window 15), shared (one deflater per thread, inflaters lent per message), small (window 9), dedicated (sized by --compressor and --decompressor).")
    var compression: Compression = .off

    enum Executor: String, ExpressibleByArgument, CaseIterable {
        case eventLoop = "event-loop", global
    }

    @Option(help: "With --api channels: where the handler's task runs, global (the default) or event-loop (Options.handlerExecutor).")
    var executor: Executor = .global

    @Option(help: "The largest read buffer a busy connection grows to, in bytes (HTTPOptions.maxReadSize).")
    var maxReadSize = 64 * 1024

    @Option(help: "With --compression dedicated: our compressor's memory per connection, one of \(Self.names(CompressionSettings.Compressor.self)) (default: .dedicated()'s).")
    var compressor: String?

    @Option(help: "With --compression dedicated: our decompressor's memory per connection, one of \(Self.names(CompressionSettings.Decompressor.self)) (default: .dedicated()'s).")
    var decompressor: String?

    static func names<T: CaseIterable>(_: T.Type) -> String { T.allCases.map { "\($0)" }.joined(separator: ", ") }
    static func named<T: CaseIterable>(_ name: String?, _: T.Type) -> T? { T.allCases.first { "\($0)" == name } }

    func validate() throws {
        guard maxMessageSize > 0 else { throw ValidationError("--max-message-size must be positive") }
        if let compressor, Self.named(compressor, CompressionSettings.Compressor.self) == nil {
            throw ValidationError("--compressor must be one of \(Self.names(CompressionSettings.Compressor.self))")
        }
        if let decompressor, Self.named(decompressor, CompressionSettings.Decompressor.self) == nil {
            throw ValidationError("--decompressor must be one of \(Self.names(CompressionSettings.Decompressor.self))")
        }
        if (compressor != nil || decompressor != nil) && compression != .dedicated {
            throw ValidationError("--compressor and --decompressor go with --compression dedicated")
        }
    }

    func run() async throws {
        let options = Options(logLevel: .warning, maxMessageSize: maxMessageSize, maxFrameSize: maxMessageSize,
                              allowAnyOrigin: true,
                              compression: compression.settings(
                                  compressor: Self.named(compressor, CompressionSettings.Compressor.self),
                                  decompressor: Self.named(decompressor, CompressionSettings.Decompressor.self)),
                              handlerExecutor: executor == .global ? .global : .eventLoop)
        let app = App(http: HTTPOptions(maxReadSize: maxReadSize))
        switch api {
        case .callback:
            app.ws("/*", options, WebSocketBehavior(message: { connection, message in connection.send(message) }))
        case .channels:
            app.any("/*", try Sockets.raw(options)) { _, socket in
                for await message in socket.receiver {
                    try? await socket.send(message)
                }
            }
        }
        try await app.run(host: host, port: port)
    }
}
