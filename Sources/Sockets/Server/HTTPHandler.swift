import Logging
import NIOCore
import NIOHTTP1

/// The HTTP side of a connection: collects a request, lets the app answer it, writes the answer.
final class HTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPServerResponsePart
    static let name = "sockets.http"

    private let core: AppCore
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false
    private var busy = false
    private var queued: [HTTPServerRequestPart] = []
    private var readPending = false
    /// The answer to a request whose upgrade was refused, decided before the upgrade (by the
    /// handshake check or by a handler of the route's chain): written when the request arrives.
    private var decided: Response?
    /// A request carrying `Upgrade` that was not upgraded: NIO's parser stops after it, so the
    /// connection is closed once it is answered.
    private var closeAfterAnswer = false

    init(core: AppCore) { self.core = core }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if busy {
            queued.append(part)
            return
        }
        handle(context: context, part)
    }

    private func handle(context: ChannelHandlerContext, _ part: HTTPServerRequestPart) {
        switch part {
        case .head(let h):
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
            if tooLarge {
                write(context: context, head: head, response: .text("413 request body too large", status: .payloadTooLarge))
                return
            }
            if let decided {
                self.decided = nil
                write(context: context, head: head, response: decided)
                return
            }
            let request = Request(head: head, body: body, remoteAddress: context.channel.remoteAddress)
            body = ByteBuffer()
            let core = self.core
            let promise = context.eventLoop.makePromise(of: Response.self)
            promise.completeWithTask { await core.respond(to: request) }
            promise.futureResult.assumeIsolated().whenSuccess { response in
                self.write(context: context, head: head, response: response)
            }
        }
    }

    private func write(context: ChannelHandlerContext, head: HTTPRequestHead, response: Response) {
        var responseHead = HTTPResponseHead(version: head.version, status: response.status, headers: response.headers)
        responseHead.headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        let keepAlive = head.isKeepAlive && !tooLarge && !closeAfterAnswer
        if !keepAlive { responseHead.headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if head.method != .HEAD && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        busy = false
        while !busy, !queued.isEmpty {
            handle(context: context, queued.removeFirst())
        }
        if !busy && readPending {
            readPending = false
            context.read()
        }
    }

    /// A refused or unrouted upgrade is followed by its request, which gets its answer then (and
    /// the connection is closed after it). Anything else (a malformed or oversized request head,
    /// whose 400 NIO's protocol error handler has already written; an I/O error) ends the
    /// connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let answered as UpgradeAnswered:
            decided = answered.response
            closeAfterAnswer = true
            return
        case let refusal as HandshakeRefusal:
            var r = Response.text(refusal.reason + "\n", status: refusal.status)
            r.headers.add(contentsOf: refusal.headers)
            decided = r
            closeAfterAnswer = true
            return
        case is WebSocketUpgrader.NoRoute:
            closeAfterAnswer = true
            return
        case is HTTPParserError:
            break
        default:
            core.logger.debug("HTTP connection error: \(error)")
        }
        context.close(promise: nil)
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

/// The answer a socket route's chain gave instead of the upgrade (a refusal by a handler or by
/// the handshake check, or 503 during shutdown): the upgrade fails with it and the HTTP handler
/// writes it.
struct UpgradeAnswered: Error, Sendable {
    let response: Response
}
