/// Limits and timeouts of an ``App``'s HTTP connections, before any upgrade: how long a client
/// may take and how much it may send before its request is refused.
///
/// One struct rather than more `App(...)` parameters: the four settings are checked together
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

    /// Creates options; every parameter has the default given on its property.
    public init(idleTimeout: Duration? = .seconds(60), requestHeadTimeout: Duration? = .seconds(10),
                maxRequestLineSize: Int = 8 * 1024, maxHeadSize: Int = 16 * 1024) {
        self.idleTimeout = idleTimeout
        self.requestHeadTimeout = requestHeadTimeout
        self.maxRequestLineSize = maxRequestLineSize
        self.maxHeadSize = maxHeadSize
    }

    /// Checks the options: timeouts positive, sizes positive, the head limit at least as large as
    /// the request line limit.
    ///
    /// - Throws: ``OptionsError`` naming the wrong field.
    public func validate() throws(OptionsError) {
        if let t = idleTimeout, t <= .zero { throw OptionsError(field: "idleTimeout", reason: "must be positive (nil disables it)") }
        if let t = requestHeadTimeout, t <= .zero {
            throw OptionsError(field: "requestHeadTimeout", reason: "must be positive (nil disables it)")
        }
        guard maxRequestLineSize >= 16 else { throw OptionsError(field: "maxRequestLineSize", reason: "must be at least 16 bytes") }
        guard maxHeadSize >= maxRequestLineSize else {
            throw OptionsError(field: "maxHeadSize", reason: "must be at least maxRequestLineSize (\(maxRequestLineSize))")
        }
    }
}
