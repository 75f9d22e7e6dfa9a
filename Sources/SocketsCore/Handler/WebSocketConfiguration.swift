public import Logging
package import NIOCore

/// The verbosity of a connection's own log lines, as in the reference (`LogLevelError` 0 …
/// `LogLevelDebug` 3).
public enum SocketLogLevel: Int, Sendable, Comparable, CaseIterable {
    /// Errors only (the reference's `LogLevelError`, 0).
    case error = 0
    /// Errors and warnings (`LogLevelWarning`, 1).
    case warning = 1
    /// Connection lifetime events too (`LogLevelInfo`, 2): the default.
    case info = 2
    /// Everything, including every frame's kind and size (`LogLevelDebug`, 3).
    case debug = 3

    /// Orders levels by verbosity.
    public static func < (lhs: SocketLogLevel, rhs: SocketLogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The swift-log level of a line of this severity: error lines at `.error`, warnings at
    /// `.warning`, and so on, so that a log backend's level filter and alerting see them as
    /// what they are. (Each line also carries `sockets.level` metadata.)
    package var swiftLogLevel: Logger.Level {
        switch self {
        case .error: return .error
        case .warning: return .warning
        case .info: return .info
        case .debug: return .debug
        }
    }

    var name: String {
        switch self {
        case .error: return "error"
        case .warning: return "warning"
        case .info: return "info"
        case .debug: return "debug"
        }
    }
}

/// What one connection's ``WebSocketHandler`` needs: limits, timers, compression and logging.
///
/// The channel layer's `Options` composes this with the handshake policy and its own buffers; a
/// SwiftNIO user who only wants the handler builds this alone. Every default is the reference's
/// where it has one.
public struct WebSocketConfiguration: Sendable {
    /// The logger for the connection's log lines. Default: label `"sockets"`.
    public var logger: Logger
    /// Which of the connection's log lines are written. Default `.info`, as in the reference.
    public var logLevel: SocketLogLevel
    /// Skip logging entirely. Default `false`.
    public var skipLogging: Bool
    /// How long one write may wait to complete before the connection is closed. `.zero` means
    /// writes never time out. Default 60 s, as in the reference.
    public var writeWait: Duration
    /// How long the peer may stay silent (no frame of any kind, pongs included) before the
    /// connection is closed. Default 60 s. Only what the peer sends counts as liveness.
    public var pongWait: Duration
    /// How often the server pings the peer; shorter than ``pongWait`` and, unless that is `.zero`,
    /// ``writeWait``. Default 48 s (8/10 of pongWait, as in the reference).
    public var pingPeriod: Duration
    /// The largest message accepted and sent, in bytes (all fragments together; inflated size
    /// with compression). A larger incoming message closes the connection with 1009 before its
    /// excess is stored. Default 65536, as in the reference.
    public var maxMessageSize: Int
    /// The largest single frame accepted. Default `nil`: the same as ``maxMessageSize``.
    /// Browsers send frames up to 128 KiB, so keep it at least that large if messages are.
    public var maxFrameSize: Int?
    /// How long to wait for the peer's close frame after sending ours before closing TCP; for a
    /// client, also how long to wait for the server to close TCP once the close frames are
    /// exchanged (RFC 6455 §7.1.1) before closing it itself. Default 5 s.
    public var closeTimeout: Duration
    /// permessage-deflate (RFC 7692). Default `nil`: off (it costs CPU and, with context
    /// takeover, memory per connection).
    public var compression: CompressionSettings?
    /// Where the connection's metrics go (``WebSocketMetrics``: open connections, messages and
    /// bytes, close codes, unanswered pings, drops, deflate). Default ``WebSocketMetrics/shared``,
    /// through `MetricsSystem.factory` (a no-op until a backend is bootstrapped).
    public var metrics: WebSocketMetrics = .shared
    /// The most bytes a connection may hold unsent (its output buffer and the channel's) before
    /// a send from the event-loop callback API is refused by ``backpressurePolicy``. Default 1 MiB.
    /// (The channel layer's `send` waits instead: see `sendChannelBuffer`.)
    public var maxBufferedAmount: Int = 1 << 20
    /// What a callback-API send does past ``maxBufferedAmount``. Default `.close`: the peer is
    /// not reading, and buffering for it without bound would let one client take the server's
    /// memory.
    public var backpressurePolicy: BackpressurePolicy = .close
    /// The connection this configuration is for, once the upgrade made it one; its log lines
    /// carry this as metadata.
    package var connection: ConnectionIdentity? = nil

    /// What to do with a send when the peer does not read fast enough.
    public enum BackpressurePolicy: Sendable, Equatable {
        /// Close the connection with 1008 (policy violation).
        case close
        /// Drop the message (``WebSocketSendResult/dropped``) and keep the connection.
        case drop
    }

    /// Creates a configuration; every parameter has its default.
    ///
    /// - Parameters:
    ///   - logger: default label `"sockets"`.
    ///   - logLevel: default `.info`.
    ///   - skipLogging: default `false`.
    ///   - writeWait: default 60 s; `.zero` disables the write timeout.
    ///   - pongWait: default 60 s.
    ///   - pingPeriod: default 48 s.
    ///   - maxMessageSize: default 65536 bytes.
    ///   - maxFrameSize: default `nil` (= maxMessageSize).
    ///   - closeTimeout: default 5 s.
    ///   - compression: default `nil` (off).
    public init(
        logger: Logger = Logger(label: "sockets"),
        logLevel: SocketLogLevel = .info,
        skipLogging: Bool = false,
        writeWait: Duration = .seconds(60),
        pongWait: Duration = .seconds(60),
        pingPeriod: Duration = .seconds(48),
        maxMessageSize: Int = 65536,
        maxFrameSize: Int? = nil,
        closeTimeout: Duration = .seconds(5),
        compression: CompressionSettings? = nil
    ) {
        self.logger = logger
        self.logLevel = logLevel
        self.skipLogging = skipLogging
        self.writeWait = writeWait
        self.pongWait = pongWait
        self.pingPeriod = pingPeriod
        self.maxMessageSize = maxMessageSize
        self.maxFrameSize = maxFrameSize
        self.closeTimeout = closeTimeout
        self.compression = compression
    }

    /// The frame limit in force: ``maxFrameSize`` or, when unset, ``maxMessageSize``.
    public var effectiveMaxFrameSize: Int { maxFrameSize ?? maxMessageSize }

    /// Checks the invariants.
    ///
    /// - Throws: ``OptionsError`` naming the first field that is wrong.
    public func validate() throws(OptionsError) {
        if pongWait <= .zero { throw OptionsError(field: "pongWait", reason: "must be positive") }
        if pingPeriod <= .zero { throw OptionsError(field: "pingPeriod", reason: "must be positive") }
        if pingPeriod >= pongWait {
            throw OptionsError(field: "pingPeriod", reason: "must be shorter than pongWait (\(pingPeriod) >= \(pongWait))")
        }
        if writeWait < .zero { throw OptionsError(field: "writeWait", reason: "must not be negative (.zero disables it)") }
        if writeWait != .zero && pingPeriod >= writeWait {
            throw OptionsError(field: "pingPeriod", reason: "must be shorter than writeWait (\(pingPeriod) >= \(writeWait))")
        }
        if maxMessageSize < 1 { throw OptionsError(field: "maxMessageSize", reason: "must be at least 1") }
        if let f = maxFrameSize, f < 1 { throw OptionsError(field: "maxFrameSize", reason: "must be at least 1") }
        if closeTimeout <= .zero { throw OptionsError(field: "closeTimeout", reason: "must be positive") }
        if maxBufferedAmount < 1 { throw OptionsError(field: "maxBufferedAmount", reason: "must be at least 1") }
        if let c = compression { try c.validate() }
    }

    /// The same configuration for one connection: its lines carry the connection's metadata
    /// (`ws.connection`: a number unique in the process, `ws.remote`: the peer's address,
    /// `ws.path`: the request target), so every line of the connection says which it is. The
    /// metadata is kept as values and turned into log metadata only when a line is written: an
    /// idle connection pays for no dictionary or strings (measured: ~700 B per connection).
    package func forConnection(remoteAddress: SocketAddress?, uri: String) -> WebSocketConfiguration {
        var c = self
        c.connection = ConnectionIdentity(number: ConnectionNumbers.next(), remote: remoteAddress, uri: uri)
        return c
    }

    /// Writes one of the connection's log lines, when ``logLevel`` lets it through.
    package func log(_ level: SocketLogLevel, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata? = nil) {
        connectionLog.log(level, message(), metadata: metadata)
    }

    /// What writing the connection's log lines needs, without the rest of the configuration (for
    /// whatever outlives the upgrade and logs, such as the channel layer's task).
    package var connectionLog: ConnectionLog {
        ConnectionLog(logger: logger, logLevel: logLevel, skipLogging: skipLogging, connection: connection)
    }
}

/// The logging part of a connection's ``WebSocketConfiguration``.
package struct ConnectionLog: Sendable {
    let logger: Logger
    let logLevel: SocketLogLevel
    let skipLogging: Bool
    let connection: ConnectionIdentity?

    /// Writes one of the connection's log lines, when `logLevel` lets it through, with the
    /// connection's metadata (built here, only for a line that is written).
    package func log(_ level: SocketLogLevel, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata? = nil) {
        guard !skipLogging, level <= logLevel else { return }
        var m = metadata ?? [:]
        m["sockets.level"] = .string(level.name)
        if let connection {
            m["ws.connection"] = "\(connection.number)"
            m["ws.remote"] = "\(connection.remote.map { "\($0)" } ?? "?")"
            m["ws.path"] = "\(connection.uri)"
        }
        logger.log(level: level.swiftLogLevel, message(), metadata: m)
    }
}

/// Which connection a configuration was made for (``WebSocketConfiguration/forConnection(remoteAddress:uri:)``).
package struct ConnectionIdentity: Sendable {
    /// A number unique in the process.
    package let number: UInt64
    /// The peer's address.
    package let remote: SocketAddress?
    /// The request target of the upgrade.
    package let uri: String
}
