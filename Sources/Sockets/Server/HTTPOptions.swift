/// Limits and timeouts of an ``App``'s HTTP connections, before any upgrade: how long a client
/// may take and how much it may send before its request is refused; and how much every
/// connection (HTTP, then WebSocket) reads from its socket at once.
///
/// One struct rather than more `App(...)` parameters: the settings are checked together
/// (the head limit must hold the request line), once, when the app starts, and further HTTP
/// settings can join them without changing `App`'s initializer again.
///
/// ```swift
/// let app = App(http: HTTPOptions(idleTimeout: .seconds(30)))
/// ```
public struct HTTPOptions: Sendable, Equatable {
    /// How long a connection may stay open with no request in progress (between requests, or
    /// before the first) or with a request body that stopped arriving, before the server closes
    /// it. Default 60 s, as common servers do for keep-alive connections; `nil` never closes an
    /// idle connection. An idle connection is closed without an answer; a stalled body (or, with
    /// no ``requestHeadTimeout``, a stalled head) gets 408 first.
    public var idleTimeout: Duration?
    /// How long a client may take from the first byte of a request to the end of its head
    /// (request line and headers) before the server answers 408 and closes. Default 10 s: enough
    /// for any real client on a slow link, and it ends a slowloris client that trickles its head.
    /// `nil` disables it (the idle timeout then bounds each pause in the head instead).
    public var requestHeadTimeout: Duration?
    /// The longest request line accepted (method, target and version, with their two spaces), in
    /// bytes; a longer one is answered 414 and the connection closed. Default 8 KiB, the limit
    /// RFC 9112 §3 suggests supporting at least.
    public var maxRequestLineSize: Int
    /// The largest request head accepted, counted as the request target plus every header name
    /// and value, in bytes; a larger one is answered 431 and the connection closed. It is
    /// enforced while the head is parsed, so no more than this is ever buffered (a request target
    /// over this size is therefore answered 431, not 414). Default 16 KiB: browsers send a few
    /// KiB, and cookies rarely reach 8.
    public var maxHeadSize: Int
    /// The size of a connection's first read buffer, in bytes. Reads adapt between 64 bytes and
    /// ``maxReadSize`` to what arrives (SwiftNIO's adaptive allocator), and a connection keeps its
    /// buffer between reads, so this is what an idle connection holds. Default 512: measured
    /// (`Benchmarks/run-echo.sh`, W4), 1.47 KiB less per idle connection than SwiftNIO's default
    /// of 2,048, with no change in the small-message echo.
    public var initialReadSize: Int
    /// The largest read buffer a busy connection grows to, in bytes. A connection keeps the
    /// buffer it grew to, so this bounds the memory of a connection that received a burst.
    /// Default 64 KiB, SwiftNIO's. Larger reads did not move large messages reliably faster
    /// here (W3 of `Benchmarks/run-echo.sh`, 1 MiB messages: 1 MiB reads measured 3.9–4.3x
    /// SwiftNIO's NIOWebSocket echo per server CPU-second against 2.1–2.6x with 64 KiB in two
    /// runs on a loaded machine, and 4.36x for both in a quiet run), and each connection that once
    /// received a burst keeps a buffer of up to this size.
    public var maxReadSize: Int

    /// Creates options; every parameter has the default given on its property.
    public init(idleTimeout: Duration? = .seconds(60), requestHeadTimeout: Duration? = .seconds(10),
                maxRequestLineSize: Int = 8 * 1024, maxHeadSize: Int = 16 * 1024,
                initialReadSize: Int = 512, maxReadSize: Int = 64 * 1024) {
        self.idleTimeout = idleTimeout
        self.requestHeadTimeout = requestHeadTimeout
        self.maxRequestLineSize = maxRequestLineSize
        self.maxHeadSize = maxHeadSize
        self.initialReadSize = initialReadSize
        self.maxReadSize = maxReadSize
    }

    /// Checks the options: timeouts positive, sizes positive, the head limit at least as large as
    /// the request line limit, reads from 64 bytes up to a maximum no smaller than the first.
    ///
    /// - Throws: `OptionsError` naming the wrong field.
    public func validate() throws(OptionsError) {
        if let t = idleTimeout, t <= .zero { throw OptionsError(field: "idleTimeout", reason: "must be positive (nil disables it)") }
        if let t = requestHeadTimeout, t <= .zero {
            throw OptionsError(field: "requestHeadTimeout", reason: "must be positive (nil disables it)")
        }
        guard maxRequestLineSize >= 16 else { throw OptionsError(field: "maxRequestLineSize", reason: "must be at least 16 bytes") }
        guard maxHeadSize >= maxRequestLineSize else {
            throw OptionsError(field: "maxHeadSize", reason: "must be at least maxRequestLineSize (\(maxRequestLineSize))")
        }
        guard initialReadSize >= 64 else { throw OptionsError(field: "initialReadSize", reason: "must be at least 64 bytes") }
        guard maxReadSize >= initialReadSize else {
            throw OptionsError(field: "maxReadSize", reason: "must be at least initialReadSize (\(initialReadSize))")
        }
    }
}
