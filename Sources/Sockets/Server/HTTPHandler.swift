import Logging
import NIOCore
import NIOHTTP1

/// The HTTP side of a connection: collects a request, lets the app answer it, writes the answer,
/// and performs a WebSocket upgrade itself, on any request of a keep-alive connection (NIO's
/// `HTTPServerUpgradeHandler` only looks at the first request).
///
/// It also enforces the app's ``HTTPOptions``: the idle and request-head timeouts (it learns that
/// bytes arrived from ``HTTPBytesArrived``, sent by the handler in front of the decoder), the
/// request line limit (414) and the head limit (the decoder's `headerOverflow`, answered 431).
/// Every refusal is a status with a one-line reason, followed by closing the connection.
final class HTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPServerResponsePart
    static let name = "sockets.http"
    static let decoderName = "sockets.http.decoder"
    static let encoderName = "sockets.http.encoder"

    /// Where the connection is, for the timers.
    private enum Phase {
        /// No request in progress: the idle timer runs.
        case waiting
        /// Bytes of a request arrived, its head is not complete: the head timer runs.
        case head
        /// The head is in, the body is arriving: the idle timer runs, restarted by every read.
        case body
        /// The request is being answered (reads are held): no timer.
        case answering
    }

    /// A request part, or a parse error, that arrived while a request was being answered.
    private enum Queued {
        case part(HTTPServerRequestPart)
        case error(any Error)
    }

    private let core: AppCore
    private let options: HTTPOptions
    private var phase = Phase.waiting
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false
    private var busy = false
    private var queued: [Queued] = []
    private var readPending = false
    /// Set for a request that carries `Upgrade` and is not upgraded (NIO's parser stops after
    /// it), a refused request head, and a parse error: the connection is closed once answered.
    private var closeAfterAnswer = false
    /// Set once the connection is being closed or upgraded: nothing more is read or answered.
    private var finished = false
    private var idleTimer: Scheduled<Void>?
    private var headTimer: Scheduled<Void>?

    init(core: AppCore, options: HTTPOptions) {
        self.core = core
        self.options = options
    }

    // MARK: Lifecycle and timers

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startIdleTimer(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
    }

    func channelActive(context: ChannelHandlerContext) {
        startIdleTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finished = true
        cancelTimers()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is HTTPBytesArrived else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch phase {
        case .waiting:
            // The first bytes of a request: from now on its head has requestHeadTimeout to arrive
            // (without one, the idle timer goes on, restarted by each read).
            phase = .head
            guard let timeout = options.requestHeadTimeout else {
                startIdleTimer(context: context)
                return
            }
            idleTimer?.cancel()
            idleTimer = nil
            headTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout.saturatingTimeAmount) { [self] in
                headTimer = nil
                guard phase == .head, !finished else { return }
                refuse(context: context, version: .http1_1, .requestTimeout,
                       "request head not received within \(Self.describe(timeout))")
            }
        case .body:
            startIdleTimer(context: context)
        case .head:
            if options.requestHeadTimeout == nil { startIdleTimer(context: context) }
        case .answering:
            break
        }
    }

    private func startIdleTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        guard let timeout = options.idleTimeout, !finished else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout.saturatingTimeAmount) { [self] in
            idleTimer = nil
            guard !finished else { return }
            switch phase {
            case .waiting:
                // RFC 9112 §9.5: a server may close an idle connection; there is no request to answer.
                finished = true
                context.close(promise: nil)
            case .body:
                refuse(context: context, version: head?.version ?? .http1_1, .requestTimeout,
                       "request body stalled for \(Self.describe(timeout))")
            case .head:
                // Only without a request-head timeout: the head stopped arriving.
                refuse(context: context, version: .http1_1, .requestTimeout, "request head stalled for \(Self.describe(timeout))")
            case .answering:
                break
            }
        }
    }

    private func cancelTimers() {
        idleTimer?.cancel()
        idleTimer = nil
        headTimer?.cancel()
        headTimer = nil
    }

    private static func describe(_ d: Duration) -> String {
        let (s, atto) = d.components
        return atto == 0 ? "\(s) s" : "\(s * 1000 + atto / 1_000_000_000_000_000) ms"
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        let part = unwrapInboundIn(data)
        if busy {
            queued.append(.part(part))
            return
        }
        handle(context: context, part)
    }

    private func handle(context: ChannelHandlerContext, _ part: HTTPServerRequestPart) {
        switch part {
        case .head(let h):
            headTimer?.cancel()
            headTimer = nil
            phase = .body
            startIdleTimer(context: context)
            // The decoder bounds the whole head (maxHeadSize); the request line has its own limit.
            let line = h.method.rawValue.utf8.count + h.uri.utf8.count + 10 // two spaces, "HTTP/1.1"
            if line > options.maxRequestLineSize {
                refuse(context: context, version: h.version, .uriTooLong,
                       "request line too long: \(line) bytes, over the \(options.maxRequestLineSize)-byte limit")
                return
            }
            head = h
            body.clear()
            tooLarge = false
        case .body(var chunk):
            if body.readableBytes + chunk.readableBytes > core.maxBodySize {
                tooLarge = true
            } else if !tooLarge {
                body.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            busy = true
            phase = .answering
            cancelTimers()
            if tooLarge {
                closeAfterAnswer = true
                write(context: context, version: head.version, method: head.method, keepAlive: false,
                      response: .text("413 request body too large", status: .payloadTooLarge))
                return
            }
            // NIO's parser stops after a request that asks for an upgrade; one that is not
            // upgraded is answered and the connection closed (issue #11, item 5).
            if head.headers.contains(name: "Upgrade") { closeAfterAnswer = true }
            let request = Request(head: head, body: body, remoteAddress: context.channel.remoteAddress)
            body = ByteBuffer()
            let core = self.core
            let promise = context.eventLoop.makePromise(of: Response.self)
            promise.completeWithTask { await core.respond(to: request) }
            promise.futureResult.assumeIsolated().whenSuccess { response in
                guard !self.finished else { return }
                if let acceptance = response.upgrade, let route = response.upgradeRoute {
                    self.upgrade(context: context, head: head, route: route, acceptance: acceptance)
                } else {
                    self.write(context: context, version: head.version, method: head.method, keepAlive: head.isKeepAlive, response: response)
                }
            }
        }
    }

    /// Answers with a status and a one-line reason, then closes: a refused head, a timeout, a
    /// parse error.
    private func refuse(context: ChannelHandlerContext, version: HTTPVersion, _ status: HTTPResponseStatus, _ reason: String) {
        busy = true
        phase = .answering
        cancelTimers()
        closeAfterAnswer = true
        core.logger.debug("HTTP request refused: \(status.code) \(reason)")
        write(context: context, version: version, method: .GET, keepAlive: false,
              response: .text("\(status.code) \(reason)\n", status: status))
    }

    private func write(context: ChannelHandlerContext, version: HTTPVersion, method: HTTPMethod, keepAlive: Bool, response: Response) {
        var responseHead = HTTPResponseHead(version: version, status: response.status, headers: response.headers)
        responseHead.headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        let keepAlive = keepAlive && !closeAfterAnswer
        if !keepAlive { responseHead.headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if method != .HEAD && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            finished = true
            queued.removeAll()
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        busy = false
        phase = .waiting
        startIdleTimer(context: context)
        while !busy, !finished, !queued.isEmpty {
            switch queued.removeFirst() {
            case .part(let part): handle(context: context, part)
            case .error(let error): failed(context: context, error)
            }
        }
        if !busy && readPending {
            readPending = false
            context.read()
        }
    }

    /// The upgrade, on this request whichever it is on the connection: the 101, then the HTTP
    /// handlers leave the pipeline and the WebSocket handler takes their place. The decoder goes
    /// last: it hands the bytes that followed the request head (a first frame in the same
    /// segment) to the WebSocket handler.
    private func upgrade(context: ChannelHandlerContext, head: HTTPRequestHead, route: WebSocketRoute, acceptance: HandshakeAcceptance) {
        finished = true
        cancelTimers()
        let channel = context.channel
        let pipeline = context.pipeline.syncOperations
        let response = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: acceptance.responseHeaders)
        context.writeAndFlush(wrapOutboundOut(.head(response)), promise: nil)
        do {
            try pipeline.removeHandler(name: Self.encoderName).wait0()
            try WebSocketUpgrader.install(route, acceptance: acceptance, request: head, on: channel)
            try pipeline.removeHandler(name: HTTPBytesWatcher.name).wait0()
            pipeline.removeHandler(context: context, promise: nil)
            // The decoder leaves on the next tick and then forwards the leftover bytes with a
            // channelRead alone; the read-complete that follows lets the WebSocket handler act on
            // them (as NIO's upgrade handler does when it replays what it buffered).
            pipeline.removeHandler(name: Self.decoderName).assumeIsolated().whenComplete { result in
                if case .failure(let error) = result {
                    self.core.logger.error("websocket upgrade failed: \(error)")
                    channel.close(promise: nil)
                    return
                }
                channel.pipeline.fireChannelReadComplete()
                channel.read()
            }
        } catch {
            core.logger.error("websocket upgrade failed: \(error)", metadata: ["uri": "\(head.uri)"])
            channel.close(promise: nil)
        }
    }

    // MARK: Errors

    /// A parse error from the decoder: 431 for a head over the limit, 505 for an HTTP version
    /// this server does not speak, 400 for anything else malformed; answered after the request
    /// in progress, if any. Anything else (an I/O error) ends the connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !finished else { return }
        if error is HTTPParserError {
            if busy {
                queued.append(.error(error))
            } else {
                failed(context: context, error)
            }
            return
        }
        core.logger.debug("HTTP connection error: \(error)")
        finished = true
        context.close(promise: nil)
    }

    private func failed(context: ChannelHandlerContext, _ error: any Error) {
        switch error as? HTTPParserError {
        case .some(.headerOverflow):
            refuse(context: context, version: .http1_1, .requestHeaderFieldsTooLarge,
                   "request head too large: over the \(options.maxHeadSize)-byte limit")
        case .some(.invalidVersion):
            refuse(context: context, version: .http1_1, .httpVersionNotSupported, "HTTP version not supported: this server speaks HTTP/1.x")
        default:
            refuse(context: context, version: .http1_1, .badRequest, "malformed HTTP request (\(error))")
        }
    }

    /// Holds reads while a request is being answered, so pipelined requests cannot pile up.
    func read(context: ChannelHandlerContext) {
        if busy {
            readPending = true
        } else {
            context.read()
        }
    }
}

/// Sent by ``HTTPBytesWatcher`` before it passes bytes on to the decoder: the HTTP handler's
/// timers need to know a request has begun before its head is parsed.
struct HTTPBytesArrived: Sendable {}

/// First in an HTTP connection's pipeline: tells the HTTP handler, through the decoder, that
/// bytes arrived, then passes them on. Removed at the upgrade.
final class HTTPBytesWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    static let name = "sockets.http.watcher"

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireUserInboundEventTriggered(HTTPBytesArrived())
        context.fireChannelRead(data)
    }
}

extension EventLoopFuture {
    /// The result of a future that is already complete (a synchronous pipeline operation on the
    /// event loop); throws its error.
    fileprivate func wait0() throws {
        var failure: (any Error)?
        assumeIsolated().whenFailure { failure = $0 }
        if let failure { throw failure }
    }
}

extension Duration {
    /// The duration as a `TimeAmount`, saturating instead of trapping past ~292 years.
    var saturatingTimeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .nanoseconds(seconds < 0 ? .min : .max) }
        let (sum, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        return .nanoseconds(overflow2 ? (seconds < 0 ? .min : .max) : sum)
    }
}
