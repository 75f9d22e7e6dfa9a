public import Logging

/// How a socket route behaves: the reference's options, with its names, meanings and defaults,
/// plus what a WebSocket library is expected to have beyond them.
///
/// Give only the options you want to change; the rest keep their defaults:
/// ```swift
/// app.get("/chat", Sockets.messages(Options(maxMessageSize: 4096, recvChannelBuffer: 32))) { socket in ... }
/// ```
/// The options are checked once, when the route is set up (``validate()``); a mistake is a thrown
/// ``OptionsError`` naming the field, never a crash or a per-request surprise.
public struct Options: Sendable {
    /// The verbosity of the socket's own log lines, as in the reference.
    public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
        /// Errors only (the reference's `LogLevelError`, 0).
        case error = 0
        /// Errors and warnings (`LogLevelWarning`, 1).
        case warning = 1
        /// Connection lifetime events too (`LogLevelInfo`, 2): the default.
        case info = 2
        /// Everything, including every frame's kind and size (`LogLevelDebug`, 3).
        case debug = 3

        /// Orders levels by verbosity.
        public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

        /// As a library, Sockets writes at swift-log's `info` and below (the SSWG logging
        /// guideline): the socket's own error and warning lines go out at `info`, tagged with
        /// `sockets.level` metadata, and debug lines at `debug`.
        var swiftLogLevel: Logger.Level {
            switch self {
            case .error, .warning, .info: return .info
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

    /// The logger for socket log lines. Default: a swift-log `Logger` labelled `"sockets"` (the
    /// reference logs to stdout with the prefix `[sockets]`; swift-log's bootstrap decides where
    /// lines go). As a library, Sockets logs at swift-log's `info` and below; ``logLevel`` picks
    /// which of its lines are written, and each carries `sockets.level` metadata.
    public var logger: Logger
    /// Which socket log lines are written. Default `.info`, as in the reference.
    public var logLevel: LogLevel
    /// Skip logging entirely. Default `false`.
    public var skipLogging: Bool
    /// How long one write may wait to complete before the connection is closed. `.zero` means
    /// writes never time out. Default 60 s, as in the reference.
    public var writeWait: Duration
    /// How long the peer may stay silent (no frame of any kind, pongs included) before the
    /// connection is closed. Default 60 s. Unlike the reference, only what the peer sends counts as
    /// liveness: our own sends do not.
    public var pongWait: Duration
    /// How often the server pings the peer. Must be shorter than ``pongWait`` and, unless it is
    /// `.zero`, ``writeWait``, or connections would time out between pings. Default 48 s
    /// (8/10 of the default pongWait, as in the reference).
    public var pingPeriod: Duration
    /// The largest message accepted (bytes, all fragments together) and sent. A larger incoming
    /// message closes the connection with 1009 before its excess is stored; a larger outgoing one is
    /// refused by `send`. Default 65536, as in the reference.
    public var maxMessageSize: Int
    /// How many outgoing messages may wait unsent before `send` suspends. Default 10.
    public var sendChannelBuffer: Int
    /// How many received messages may wait unread before the server stops reading from the socket
    /// (TCP then pushes back on the client). Default 10.
    public var recvChannelBuffer: Int
    /// A regular expression searched (not anchored) in the request's `Origin` header, like Go's
    /// `regexp.MatchString`. `{{host}}` is replaced by the request's `Host`, escaped so that it
    /// matches only itself (the reference inserts it raw, so host `a.b` let origin `http://aXb` in).
    /// Default `"https?://{{host}}$"`: same-host pages only.
    public var allowedOrigin: String

    // Beyond the reference.

    /// The largest single frame accepted (bytes). Default `nil`: the same as ``maxMessageSize``.
    /// Browsers send frames up to 128 KiB, so keep it at least that large if messages are.
    public var maxFrameSize: Int?
    /// How long to wait for the peer's close frame after sending ours before closing TCP.
    /// Default 5 s.
    public var closeTimeout: Duration
    /// The subprotocols this route speaks, in order of preference. The first one the client also
    /// offers is chosen and echoed in `Sec-WebSocket-Protocol`. Default: none.
    public var subprotocols: [String]
    /// Accept handshakes that carry no `Origin` header (non-browser clients). Default `false`:
    /// a missing Origin is refused with 403, because the origin check cannot be made.
    public var allowMissingOrigin: Bool
    /// Accept any origin (no check at all). Default `false`. For tools and servers whose clients
    /// are not browsers; never for a route that relies on cookies.
    public var allowAnyOrigin: Bool

    /// Creates options; every parameter has the reference's default.
    ///
    /// - Parameters:
    ///   - logger: the logger (default: label `"sockets"`).
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
    public init(
        logger: Logger = Logger(label: "sockets"),
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
        compression: Compression? = nil
    ) {
        self.logger = logger
        self.logLevel = logLevel
        self.skipLogging = skipLogging
        self.writeWait = writeWait
        self.pongWait = pongWait
        self.pingPeriod = pingPeriod
        self.maxMessageSize = maxMessageSize
        self.sendChannelBuffer = sendChannelBuffer
        self.recvChannelBuffer = recvChannelBuffer
        self.allowedOrigin = allowedOrigin
        self.maxFrameSize = maxFrameSize
        self.closeTimeout = closeTimeout
        self.subprotocols = subprotocols
        self.allowMissingOrigin = allowMissingOrigin
        self.allowAnyOrigin = allowAnyOrigin
        self.compression = compression
    }

    /// permessage-deflate (RFC 7692): compression of messages, negotiated with each client.
    /// Default `nil`: off, as in the reference and gorilla (it costs CPU, and with context
    /// takeover memory per connection; see ``Compression``).
    public var compression: Compression?

    /// permessage-deflate settings. The client's offer decides within what it allows; these
    /// decide the rest. Bytes per connection measured in Benchmarks/RESULTS-deflate.md: a
    /// dedicated deflater costs ~268 KB at window 15, ~39 KB at 12, ~10 KB at 9; the shared one
    /// costs nothing per connection (one per event-loop thread, no context takeover).
    public struct Compression: Sendable, Hashable {
        /// Where our deflater lives.
        public enum Memory: Sendable, Hashable {
            /// One deflater per connection, with context takeover unless disabled.
            case dedicated
            /// One deflater per event-loop thread for every connection on it; resets after every
            /// message (we state server_no_context_takeover).
            case shared
        }

        /// Where our deflater lives. Default `.dedicated`.
        public var memory: Memory
        /// Our LZ77 window, 2^windowBits bytes, 9–15 (never 8: zlib cannot honour it). Default 15.
        public var windowBits: Int
        /// The window we ask the client to use when it allows us to, 9–15. Default 15 (no ask).
        public var peerWindowBits: Int
        /// Reset our deflater after every message. Default `false`.
        public var noContextTakeover: Bool
        /// Ask the client to reset after every message. Default `false`.
        public var peerNoContextTakeover: Bool
        /// zlib level, 0–9. Default 1: fastest at nearly the ratio of 6 on small JSON (measured).
        public var level: Int
        /// Messages shorter than this go out uncompressed. Default 256 bytes.
        public var threshold: Int

        /// Creates settings; every parameter has the default given on its property.
        public init(memory: Memory = .dedicated, windowBits: Int = 15, peerWindowBits: Int = 15,
                    noContextTakeover: Bool = false, peerNoContextTakeover: Bool = false,
                    level: Int = 1, threshold: Int = 256) {
            self.memory = memory
            self.windowBits = windowBits
            self.peerWindowBits = peerWindowBits
            self.noContextTakeover = noContextTakeover
            self.peerNoContextTakeover = peerNoContextTakeover
            self.level = level
            self.threshold = threshold
        }

        /// The defaults: dedicated, window 15, level 1, threshold 256.
        public static let `default` = Compression()
    }

    /// The frame limit in force: ``maxFrameSize`` or, when unset, ``maxMessageSize``.
    public var effectiveMaxFrameSize: Int { maxFrameSize ?? maxMessageSize }

    /// Checks the options' invariants.
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
        if sendChannelBuffer < 1 { throw OptionsError(field: "sendChannelBuffer", reason: "must be at least 1") }
        if recvChannelBuffer < 1 { throw OptionsError(field: "recvChannelBuffer", reason: "must be at least 1") }
        if closeTimeout <= .zero { throw OptionsError(field: "closeTimeout", reason: "must be positive") }
        for p in subprotocols where p.isEmpty || !p.utf8.allSatisfy(HTTPToken.isTokenByte) {
            throw OptionsError(field: "subprotocols", reason: "\"\(p)\" is not an HTTP token")
        }
        if let c = compression {
            if !(9...15).contains(c.windowBits) { throw OptionsError(field: "compression.windowBits", reason: "must be 9-15") }
            if !(9...15).contains(c.peerWindowBits) { throw OptionsError(field: "compression.peerWindowBits", reason: "must be 9-15") }
            if !(0...9).contains(c.level) { throw OptionsError(field: "compression.level", reason: "must be 0-9") }
            if c.threshold < 0 { throw OptionsError(field: "compression.threshold", reason: "must not be negative") }
        }
        if !allowAnyOrigin {
            do {
                _ = try OriginCheck(pattern: allowedOrigin)
            } catch {
                throw OptionsError(field: "allowedOrigin", reason: "not a valid regular expression: \(error)")
            }
        }
    }

    func log(_ level: LogLevel, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata? = nil) {
        guard !skipLogging, level <= logLevel else { return }
        var m = metadata ?? [:]
        m["sockets.level"] = .string(level.name)
        logger.log(level: level.swiftLogLevel, message(), metadata: m)
    }
}

/// A configuration mistake in ``Options``, found when the route is set up.
public struct OptionsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The option that is wrong, by its property name.
    public let field: String
    /// Why, in a few words.
    public let reason: String

    /// A one-line description: `"<field>: <reason>"`.
    public var description: String { "invalid Options.\(field): \(reason)" }
}

/// RFC 9110 §5.6.2 token characters.
enum HTTPToken {
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }
}
