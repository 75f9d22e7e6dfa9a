public import Logging
import NIOCore
public import NIOHTTP1

/// How a socket route behaves: the reference's options, with its names, meanings and defaults,
/// plus what a WebSocket library is expected to have beyond them.
///
/// Give only the options you want to change, in any order; the rest keep their defaults:
/// ```swift
/// let options = Options {
///     $0.recvChannelBuffer = 32
///     $0.maxMessageSize = 4096
/// }
/// app.get("/chat", try Sockets.messages(options)) { params, socket in ... }
///
/// var o = Options()             // or step by step
/// o.allowAnyOrigin = true
/// ```
/// The memberwise initializer (`Options(maxMessageSize: 4096, recvChannelBuffer: 32)`) takes its
/// arguments in the order of the parameter list below.
/// The options are checked once, when the route is set up (``validate()``); a mistake is a thrown
/// `OptionsError` naming the field, never a crash or a per-request surprise.
public struct Options: Sendable {
    /// The verbosity of the socket's own log lines, as in the reference.
    public typealias LogLevel = SocketLogLevel
    /// permessage-deflate settings.
    public typealias Compression = CompressionSettings

    /// What the NIO handler needs: limits, timers, compression, logging.
    public var configuration: WebSocketConfiguration
    /// The opening handshake's rules: origin, subprotocols.
    public var handshake: HandshakePolicy
    /// How many outgoing messages may wait unsent before `send` suspends. Default 10.
    public var sendChannelBuffer: Int
    /// How many received messages may wait unread before the server stops reading from the socket
    /// (TCP then pushes back on the client). Default 10.
    public var recvChannelBuffer: Int
    /// Where the task that runs a channel-API handler runs: Swift's global executor (the default)
    /// or the connection's event loop (no thread hand-off per message). See ``HandlerExecutor``.
    public var handlerExecutor: HandlerExecutor

    /// The logger for socket log lines. Default: in an ``App``, the app's logger; elsewhere a
    /// swift-log `Logger` labelled `"sockets"` (swift-log's bootstrap decides where lines go).
    /// Setting it makes the route log here even inside an app. Lines go out at the swift-log
    /// level of their severity (errors at `.error`, warnings at `.warning`); ``logLevel`` picks
    /// which are written, each carries `sockets.level` metadata, and a connection's lines carry
    /// `ws.connection`, `ws.remote` and `ws.path`.
    public var logger: Logger {
        get { configuration.logger }
        set {
            configuration.logger = newValue
            hasLogger = true
        }
    }
    /// Whether ``logger`` was given (an ``App`` gives the rest its own).
    var hasLogger = false
    /// Which socket log lines are written. Default `.info`, as in the reference.
    public var logLevel: LogLevel {
        get { configuration.logLevel }
        set { configuration.logLevel = newValue }
    }
    /// Skip logging entirely. Default `false`.
    public var skipLogging: Bool {
        get { configuration.skipLogging }
        set { configuration.skipLogging = newValue }
    }
    /// How long one write may wait to complete before the connection is closed. `.zero` means
    /// writes never time out. Default 60 s, as in the reference.
    public var writeWait: Duration {
        get { configuration.writeWait }
        set { configuration.writeWait = newValue }
    }
    /// How long the peer may stay silent (no frame of any kind, pongs included) before the
    /// connection is closed. Default 60 s. Unlike the reference, only what the peer sends counts as
    /// liveness: our own sends do not.
    public var pongWait: Duration {
        get { configuration.pongWait }
        set { configuration.pongWait = newValue }
    }
    /// How often the server pings the peer. Must be shorter than ``pongWait`` and, unless it is
    /// `.zero`, ``writeWait``, or connections would time out between pings. Default 48 s
    /// (8/10 of the default pongWait, as in the reference).
    public var pingPeriod: Duration {
        get { configuration.pingPeriod }
        set { configuration.pingPeriod = newValue }
    }
    /// The largest message accepted (bytes, all fragments together) and sent. A larger incoming
    /// message closes the connection with 1009 before its excess is stored; a larger outgoing one is
    /// refused by `send`. Default 65536, as in the reference.
    public var maxMessageSize: Int {
        get { configuration.maxMessageSize }
        set { configuration.maxMessageSize = newValue }
    }
    /// A regular expression that must match the request's whole `Origin` header (anchored at both
    /// ends; the reference searches it). `{{host}}` is replaced by the request's `Host`, escaped so that it
    /// matches only itself (the reference inserts it raw, so host `a.b` let origin `http://aXb` in).
    /// Default `"https?://{{host}}$"`: same-host pages only. Compiled once per route.
    public var allowedOrigin: String {
        get { handshake.allowedOrigin }
        set { handshake.allowedOrigin = newValue }
    }

    // Beyond the reference.

    /// The largest single frame accepted (bytes). Default `nil`: the same as ``maxMessageSize``.
    /// Browsers send frames up to 128 KiB, so keep it at least that large if messages are.
    public var maxFrameSize: Int? {
        get { configuration.maxFrameSize }
        set { configuration.maxFrameSize = newValue }
    }
    /// How long to wait for the peer's close frame after sending ours before closing TCP; for a
    /// client, also how long to wait for the server to close TCP once the close frames are
    /// exchanged (RFC 6455 §7.1.1) before closing it itself. Default 5 s.
    public var closeTimeout: Duration {
        get { configuration.closeTimeout }
        set { configuration.closeTimeout = newValue }
    }
    /// The subprotocols this route speaks, in order of preference. The first one the client also
    /// offers is chosen and echoed in `Sec-WebSocket-Protocol`. Default: none.
    public var subprotocols: [String] {
        get { handshake.subprotocols }
        set { handshake.subprotocols = newValue }
    }
    /// Accept handshakes that carry no `Origin` header (non-browser clients). Default `false`:
    /// a missing Origin is refused with 403, because the origin check cannot be made.
    public var allowMissingOrigin: Bool {
        get { handshake.allowMissingOrigin }
        set { handshake.allowMissingOrigin = newValue }
    }
    /// Accept any origin (no check at all). Default `false`. For tools and servers whose clients
    /// are not browsers; never for a route that relies on cookies.
    public var allowAnyOrigin: Bool {
        get { handshake.allowAnyOrigin }
        set { handshake.allowAnyOrigin = newValue }
    }
    /// permessage-deflate (RFC 7692): compression of messages, negotiated with each client.
    /// Default `nil`: off, as in the reference and gorilla (it costs CPU, and with context
    /// takeover memory per connection; see `CompressionSettings`).
    public var compression: Compression? {
        get { configuration.compression }
        set { configuration.compression = newValue }
    }

    /// Creates options; every parameter has the reference's default.
    ///
    /// - Parameters:
    ///   - logger: the logger (default: the app's in an ``App``, else label `"sockets"`).
    ///   - logLevel: default `.info`.
    ///   - skipLogging: default `false`.
    ///   - writeWait: default 60 s; `.zero` disables the write timeout.
    ///   - pongWait: default 60 s.
    ///   - pingPeriod: default 48 s.
    ///   - maxMessageSize: default 65536 bytes.
    ///   - sendChannelBuffer: default 10 messages.
    ///   - recvChannelBuffer: default 10 messages.
    ///   - allowedOrigin: default `"https?://{{host}}$"`.
    ///   - maxFrameSize: default `nil` (= maxMessageSize).
    ///   - closeTimeout: default 5 s.
    ///   - subprotocols: default none.
    ///   - allowMissingOrigin: default `false`.
    ///   - allowAnyOrigin: default `false`.
    ///   - compression: default `nil` (off).
    ///   - handlerExecutor: default `.global`.
    public init(
        logger: Logger? = nil,
        logLevel: LogLevel = .info,
        skipLogging: Bool = false,
        writeWait: Duration = .seconds(60),
        pongWait: Duration = .seconds(60),
        pingPeriod: Duration = .seconds(48),
        maxMessageSize: Int = 65536,
        sendChannelBuffer: Int = 10,
        recvChannelBuffer: Int = 10,
        allowedOrigin: String = "https?://{{host}}$",
        maxFrameSize: Int? = nil,
        closeTimeout: Duration = .seconds(5),
        subprotocols: [String] = [],
        allowMissingOrigin: Bool = false,
        allowAnyOrigin: Bool = false,
        compression: Compression? = nil,
        handlerExecutor: HandlerExecutor = .global
    ) {
        self.configuration = WebSocketConfiguration(
            logger: logger ?? Logger(label: "sockets"), logLevel: logLevel, skipLogging: skipLogging, writeWait: writeWait, pongWait: pongWait,
            pingPeriod: pingPeriod, maxMessageSize: maxMessageSize, maxFrameSize: maxFrameSize, closeTimeout: closeTimeout,
            compression: compression)
        self.handshake = HandshakePolicy(allowedOrigin: allowedOrigin, subprotocols: subprotocols,
                                         allowMissingOrigin: allowMissingOrigin, allowAnyOrigin: allowAnyOrigin)
        self.sendChannelBuffer = sendChannelBuffer
        self.recvChannelBuffer = recvChannelBuffer
        self.handlerExecutor = handlerExecutor
        self.hasLogger = logger != nil
    }

    /// Creates options from the defaults, changed by `configure` in any order:
    /// `Options { $0.maxMessageSize = 4096; $0.allowAnyOrigin = true }`. Check them with
    /// ``validate()`` (the socket middleware does).
    ///
    /// - Parameter configure: sets the options to change.
    public init(_ configure: (inout Options) throws -> Void) rethrows {
        self.init()
        try configure(&self)
    }

    /// The frame limit in force: ``maxFrameSize`` or, when unset, ``maxMessageSize``.
    public var effectiveMaxFrameSize: Int { configuration.effectiveMaxFrameSize }

    /// Checks the options' invariants, once for all three layers.
    ///
    /// - Throws: `OptionsError` naming the first field that is wrong.
    public func validate() throws(OptionsError) {
        _ = try route()
    }

    /// The NIO layer's route for these options (configuration and handshake checked, origin
    /// compiled), after checking the channel buffers.
    func route(onUpgrade: @escaping @Sendable (_ channel: any Channel, _ request: HTTPRequestHead, _ acceptance: HandshakeAcceptance) throws -> Void = { _, _, _ in })
        throws(OptionsError) -> WebSocketRoute {
        if sendChannelBuffer < 1 { throw OptionsError(field: "sendChannelBuffer", reason: "must be at least 1") }
        if recvChannelBuffer < 1 { throw OptionsError(field: "recvChannelBuffer", reason: "must be at least 1") }
        return try WebSocketRoute(configuration: configuration, handshake: handshake, onUpgrade: onUpgrade)
    }

    func log(_ level: LogLevel, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata? = nil) {
        configuration.log(level, message(), metadata: metadata)
    }
}

extension Handshake {
    /// Runs the handshake checks with a route's ``Options`` (compiling them each call: for tests
    /// and one-off checks; routes compile them once).
    ///
    /// - Returns: the acceptance, or the refusal; options that do not validate refuse with 500.
    public static func evaluate(_ head: HTTPRequestHead, options: Options) -> Result<HandshakeAcceptance, HandshakeRefusal> {
        do {
            return evaluate(head, route: try options.route())
        } catch {
            return .failure(HandshakeRefusal(.internalServerError, "\(error)"))
        }
    }
}
