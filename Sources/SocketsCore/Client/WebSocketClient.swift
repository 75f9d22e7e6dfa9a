#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import NIOCore
public import NIOPosix
package import NIOHTTP1
import NIOSSL

/// Connects to WebSocket servers (`ws://` and `wss://`): the client role of the same engine,
/// handler and timers the server uses.
///
/// ```swift
/// let response = try await WebSocketClient.connect(
///     to: URL(string: "wss://example.com/echo")!,
///     behavior: WebSocketBehavior(open: { c in _ = c.send(text: "hello") },
///                                 message: { c, m in print(m); c.close() }))
/// ```
/// The channel layer (`Socket<T>`) has its own entry point in the `Sockets` module,
/// `WebSocketClient.connect(to:_:options:)`.
///
/// The opening handshake is checked to the letter (RFC 6455 §4.1): status 101, `Upgrade:
/// websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept` for our key, an extension or a
/// subprotocol only if we offered it; anything else is a ``WebSocketClientError`` naming the
/// header. Every frame we send is masked with a fresh key from the system's CSPRNG.
public enum WebSocketClient {
    /// Connects with the event-loop callback API: the behaviour's closures run on the
    /// connection's event loop, as on a server route.
    ///
    /// - Parameters:
    ///   - url: a `ws://` or `wss://` URL.
    ///   - configuration: limits, timers, compression (an offer of permessage-deflate when set),
    ///     logging: the same as a server route's. Default: the defaults.
    ///   - options: headers, subprotocols, timeouts, TLS.
    ///   - eventLoopGroup: where the connection runs. Default: NIO's singleton group.
    ///   - behavior: open, message, drain and close callbacks.
    /// - Returns: what the server agreed, once the connection is open (the behaviour's `open`
    ///   has run).
    /// - Throws: ``WebSocketClientError``; ``OptionsError`` for an invalid configuration.
    @discardableResult
    public static func connect(to url: URL, configuration: WebSocketConfiguration = WebSocketConfiguration(),
                               options: WebSocketClientOptions = WebSocketClientOptions(),
                               eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               behavior: WebSocketBehavior) async throws -> WebSocketClientResponse {
        try await connect(to: url, configuration: configuration, options: options, eventLoopGroup: eventLoopGroup) { response, _, _, handler in
            handler.attach(BehaviorApplication(behavior), queueCapacity: 1024)
            return response
        }
    }

    /// The connection proper: connects, checks the handshake, installs a client-role
    /// ``WebSocketHandler`` and calls `install` with it on the event loop, before any byte after
    /// the handshake is parsed (attach the application there).
    package static func connect<Installed: Sendable>(
        to url: URL, configuration: WebSocketConfiguration, options: WebSocketClientOptions,
        eventLoopGroup: any EventLoopGroup,
        install: @escaping @Sendable (WebSocketClientResponse, HTTPRequestHead, any Channel, WebSocketHandler) throws -> Installed
    ) async throws -> Installed {
        try configuration.validate()
        let target = try ClientTarget(url: url)
        let request = try ClientRequest(target: target, options: options, compression: configuration.compression)
        let sslContext: NIOSSLContext?
        if target.secure {
            sslContext = try makeSSLContext(options.tls)
        } else {
            sslContext = nil
        }
        let serverName = options.tls.serverName ?? (target.hostIsAddress ? nil : target.host)
        let handshakeTimeout = TimeAmount(saturating: options.handshakeTimeout)
        let loop = eventLoopGroup.next()
        let promise = loop.makePromise(of: Installed.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(saturating: options.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let sslContext {
                        try pipeline.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try pipeline.addHandler(ClientHandshakeHandler(
                        request: request, configuration: configuration, maxHeadSize: options.maxResponseHeadSize,
                        timeout: handshakeTimeout, promise: promise, install: install))
                }
            }
        do {
            _ = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch {
            promise.fail(error)
            throw mapError(error)
        }
        do {
            return try await promise.futureResult.get()
        } catch {
            throw mapError(error)
        }
    }

    static func mapError(_ error: any Error) -> any Error {
        switch error {
        case let e as WebSocketClientError: return e
        case ChannelError.connectTimeout: return WebSocketClientError.connectTimeout
        case let e as NIOSSLError: return WebSocketClientError.tls("\(e)")
        case let e as NIOSSLExtraError: return WebSocketClientError.tls("\(e)")
        default: return error
        }
    }

    private static func makeSSLContext(_ tls: WebSocketClientTLS) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        if let file = tls.trustRootsFile {
            // NIOSSL reads the file when the context is made; a missing file is reported here,
            // by name, rather than as a failed handshake later.
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw WebSocketClientError.tls("trust roots file \(file) cannot be read")
            }
            config.trustRoots = .file(file)
        }
        if !tls.verifyCertificates { config.certificateVerification = .none }
        do {
            return try NIOSSLContext(configuration: config)
        } catch {
            throw WebSocketClientError.tls("cannot load trust roots \(tls.trustRootsFile ?? "(system)"): \(error)")
        }
    }
}

/// A parsed `ws://` / `wss://` URL.
struct ClientTarget {
    let secure: Bool
    let host: String
    let port: Int
    let hostIsAddress: Bool
    /// The request target: path and query.
    let uri: String
    /// The `Host` header value.
    let hostHeader: String

    init(url: URL) throws(WebSocketClientError) {
        guard let scheme = url.scheme?.lowercased(), scheme == "ws" || scheme == "wss" else {
            throw .invalidURL("\(url.absoluteString): the scheme must be ws or wss")
        }
        guard var host = url.host, !host.isEmpty else { throw .invalidURL("\(url.absoluteString): no host") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if url.fragment != nil { throw .invalidURL("\(url.absoluteString): a WebSocket URL has no fragment (RFC 6455 §3)") }
        secure = scheme == "wss"
        let defaultPort = secure ? 443 : 80
        port = url.port ?? defaultPort
        guard (1...65535).contains(port) else { throw .invalidURL("\(url.absoluteString): port out of range") }
        self.host = host
        hostIsAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        var path = url.path(percentEncoded: true)
        if path.isEmpty { path = "/" }
        if let query = url.query(percentEncoded: true) { path += "?" + query }
        uri = path
        let bracketed = host.contains(":") ? "[\(host)]" : host
        hostHeader = port == defaultPort ? bracketed : "\(bracketed):\(port)"
    }
}

/// The upgrade request and what checking its answer needs.
struct ClientRequest: Sendable {
    let head: HTTPRequestHead
    let bytes: [UInt8]
    let expectedAccept: String
    let subprotocols: [String]
    let compression: CompressionSettings?

    static let reserved: Set<String> = ["host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                                        "sec-websocket-protocol", "sec-websocket-extensions", "sec-websocket-accept",
                                        "content-length", "transfer-encoding"]

    init(target: ClientTarget, options: WebSocketClientOptions, compression: CompressionSettings?) throws(WebSocketClientError) {
        var generator = SystemRandomNumberGenerator()
        let nonce = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let key = Base64.encode(nonce)
        guard let accept = Handshake.acceptValue(forKey: key) else { preconditionFailure("a 16-byte key is valid") }
        expectedAccept = accept
        subprotocols = options.subprotocols
        self.compression = compression
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: target.hostHeader)
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        headers.add(name: "Sec-WebSocket-Key", value: key)
        headers.add(name: "Sec-WebSocket-Version", value: "13")
        for p in options.subprotocols where !ClientRequest.isToken(p) {
            throw .invalidRequestHeader(name: "Sec-WebSocket-Protocol", reason: "subprotocol \"\(p)\" is not an HTTP token")
        }
        if !options.subprotocols.isEmpty {
            headers.add(name: "Sec-WebSocket-Protocol", value: options.subprotocols.joined(separator: ", "))
        }
        if let compression {
            headers.add(name: "Sec-WebSocket-Extensions", value: CompressionAgreement.clientOffer(settings: compression))
        }
        for (name, value) in options.headers {
            if Self.reserved.contains(name.lowercased()) {
                throw .invalidRequestHeader(name: name, reason: "set by the WebSocket client itself")
            }
            if !ClientRequest.isToken(name) { throw .invalidRequestHeader(name: name, reason: "not a valid header name") }
            if value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
                throw .invalidRequestHeader(name: name, reason: "the value has a line break or NUL")
            }
            headers.add(name: name, value: value)
        }
        head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.uri, headers: headers)
        var text = "GET \(target.uri) HTTP/1.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        bytes = Array(text.utf8)
    }

    static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }
}

/// Sends the upgrade request, reads the response head, checks it, then puts the client-role
/// ``WebSocketHandler`` in its place and hands it the bytes that followed the head.
final class ClientHandshakeHandler<Installed: Sendable>: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let request: ClientRequest
    private let configuration: WebSocketConfiguration
    private let maxHeadSize: Int
    private let timeout: TimeAmount
    private let promise: EventLoopPromise<Installed>
    private let install: @Sendable (WebSocketClientResponse, HTTPRequestHead, any Channel, WebSocketHandler) throws -> Installed
    private var received: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var done = false

    init(request: ClientRequest, configuration: WebSocketConfiguration, maxHeadSize: Int, timeout: TimeAmount,
         promise: EventLoopPromise<Installed>,
         install: @escaping @Sendable (WebSocketClientResponse, HTTPRequestHead, any Channel, WebSocketHandler) throws -> Installed) {
        self.request = request
        self.configuration = configuration
        self.maxHeadSize = maxHeadSize
        self.timeout = timeout
        self.promise = promise
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { begin(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        begin(context: context)
        context.fireChannelActive()
    }

    private func begin(context: ChannelHandlerContext) {
        guard timer == nil, !done else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            handler.fail(WebSocketClientError.handshakeTimeout, context: context)
        }
        var buffer = context.channel.allocator.buffer(capacity: request.bytes.count)
        buffer.writeBytes(request.bytes)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        var incoming = unwrapInboundIn(data)
        if received == nil {
            received = incoming
        } else {
            received!.writeBuffer(&incoming)
        }
        guard let buffer = received else { return }
        let view = buffer.readableBytesView
        guard let end = Self.headEnd(view) else {
            if buffer.readableBytes > maxHeadSize {
                fail(WebSocketClientError.malformedResponse("response head larger than \(maxHeadSize) bytes"), context: context)
            }
            return
        }
        guard end <= maxHeadSize else {
            fail(WebSocketClientError.malformedResponse("response head larger than \(maxHeadSize) bytes"), context: context)
            return
        }
        let head = String(decoding: view.prefix(end), as: UTF8.self)
        var rest = buffer
        rest.moveReaderIndex(forwardBy: end + 4)
        received = nil
        do {
            let (response, compression) = try ClientResponseCheck.check(head: head, request: request)
            let handler = try WebSocketHandler(configuration: configuration, compression: compression, role: .client)
            try context.pipeline.syncOperations.addHandler(handler, position: .after(self))
            let installed = try install(response, request.head, context.channel, handler)
            done = true
            timer?.cancel()
            configuration.log(.info, "websocket connected (client): \(request.head.uri)")
            promise.succeed(installed)
            if rest.readableBytes > 0 {
                context.fireChannelRead(wrapInboundOut(rest))
                context.fireChannelReadComplete()
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            fail(error, context: context)
        }
    }

    /// The offset of the blank line ending the head, if it has arrived.
    static func headEnd(_ view: ByteBufferView) -> Int? {
        guard view.count >= 4 else { return nil }
        var i = view.startIndex
        let last = view.endIndex - 3
        while i < last {
            if view[i] == 13, view[i + 1] == 10, view[i + 2] == 13, view[i + 3] == 10 { return i - view.startIndex }
            i += 1
        }
        return nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !done else {
            context.fireErrorCaught(error)
            return
        }
        fail(WebSocketClient.mapError(error), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(WebSocketClientError.closedDuringHandshake, context: context)
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        timer?.cancel()
        configuration.log(.warning, "websocket client handshake failed: \(error)")
        promise.fail(error)
        context.close(promise: nil)
    }
}

/// The checks of RFC 6455 §4.1 (and RFC 7692 §5 for permessage-deflate) on a response head.
enum ClientResponseCheck {
    static func check(head: String, request: ClientRequest) throws(WebSocketClientError) -> (WebSocketClientResponse, CompressionAgreement?) {
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw .malformedResponse("empty response") }
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]), parts[1].count == 3 else {
            throw .malformedResponse("status line \"\(statusLine.prefix(100))\" is not HTTP/1.1")
        }
        let reason = parts.count > 2 ? String(parts[2]) : ""
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw .malformedResponse("header line without a colon: \"\(line.prefix(100))\"") }
            let name = line[..<colon]
            guard ClientRequest.isToken(String(name)) else { throw .malformedResponse("invalid header name \"\(name.prefix(100))\"") }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers.add(name: String(name), value: String(value.reversed().drop { $0 == " " || $0 == "\t" }.reversed()))
        }
        guard status == 101 else { throw .unexpectedStatus(status, reason: reason) }

        let upgrade = headers["Upgrade"]
        guard upgrade.count == 1, upgrade[0].lowercased() == "websocket" else {
            throw .invalidResponseHeader(name: "Upgrade", reason: upgrade.isEmpty ? "missing" : "expected websocket, got \"\(upgrade.joined(separator: ", "))\"")
        }
        let connection = headers[canonicalForm: "Connection"].map { $0.lowercased() }
        guard connection.contains("upgrade") else {
            throw .invalidResponseHeader(name: "Connection", reason: connection.isEmpty ? "missing" : "has no upgrade token")
        }
        let accept = headers["Sec-WebSocket-Accept"]
        guard accept.count == 1 else {
            throw .invalidResponseHeader(name: "Sec-WebSocket-Accept", reason: accept.isEmpty ? "missing" : "sent \(accept.count) times")
        }
        guard accept[0] == request.expectedAccept else {
            throw .invalidResponseHeader(name: "Sec-WebSocket-Accept", reason: "\"\(accept[0].prefix(60))\" does not match our key (expected \(request.expectedAccept))")
        }

        let protocols = headers[canonicalForm: "Sec-WebSocket-Protocol"].map(String.init)
        var subprotocol: String? = nil
        if !protocols.isEmpty {
            guard protocols.count == 1 else {
                throw .invalidResponseHeader(name: "Sec-WebSocket-Protocol", reason: "the server chose several: \(protocols.joined(separator: ", "))")
            }
            guard request.subprotocols.contains(protocols[0]) else {
                throw .invalidResponseHeader(name: "Sec-WebSocket-Protocol",
                                             reason: request.subprotocols.isEmpty ? "\"\(protocols[0])\" chosen but none was offered"
                                                 : "\"\(protocols[0])\" was not offered (offered: \(request.subprotocols.joined(separator: ", ")))")
            }
            subprotocol = protocols[0]
        }

        let extensions = headers["Sec-WebSocket-Extensions"]
        var agreement: CompressionAgreement? = nil
        var extensionValue: String? = nil
        if !extensions.isEmpty {
            let joined = extensions.joined(separator: ", ")
            guard let settings = request.compression else {
                throw .invalidResponseHeader(name: "Sec-WebSocket-Extensions", reason: "\"\(joined.prefix(100))\" but no extension was offered")
            }
            switch CompressionAgreement.clientAccept(response: joined, settings: settings) {
            case .agreed(let a):
                agreement = a
                extensionValue = joined
            case .declined:
                break
            case .refused(let why):
                throw .invalidResponseHeader(name: "Sec-WebSocket-Extensions", reason: "\"\(joined.prefix(100))\" does not fit our offer: \(why)")
            }
        }
        return (WebSocketClientResponse(headers: headers, subprotocol: subprotocol, extensions: extensionValue), agreement)
    }
}

/// Standard base64 with padding (RFC 4648 §4), for the handshake key.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 3) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 15) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
