// A plain SwiftNIO server that serves a JSON WebSocket route with the channel layer (`Socket<T>`)
// and answers plain HTTP itself: the library's pieces in a server you write, not in `App`.
//
//     swift run NIOServerExample [--typed] [--port 8080]
//
// Without `--typed` it uses NIO's classic upgrade (`HTTPServerUpgradeHandler`, set up by
// `configureHTTPServerPipeline(withServerUpgrade:)`) with our `WebSocketUpgrader`; with `--typed`,
// NIO's typed, async upgrade (`configureUpgradableHTTPServerPipeline`, as Hummingbird 2 uses) with
// our `TypedWebSocketUpgrader`. Both serve:
//   GET /        200 "hello from NIO"
//   /chat        WebSocket, JSON {"user": …, "text": …}: each message comes back with the text
//                upper-cased; a refused handshake (an origin from another host) is answered
//                with its status (403) and reason
//   anything else 404
// Tests/SocketsTests/NIOExampleTests.swift builds and drives it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Sockets

struct Message: Codable, Sendable {
    var user: String
    var text: String
}

let arguments = CommandLine.arguments
let typed = arguments.contains("--typed")
let port = arguments.firstIndex(of: "--port").flatMap { Int(arguments[$0 + 1]) } ?? 8080
let logger = Logger(label: "nio-example")

/// Writes a line to stdout at once (unbuffered, also when stdout is a pipe).
func say(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
}

/// The request path, without the query.
func path(of uri: String) -> Substring { uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0] }

// The route, built once with `try`: options that do not validate stop the server here, naming the
// field (a `try?` would leave every upgrade to the HTTP handler: a silent 404).
let chat: WebSocketRoute = try Sockets.json(Message.self, Options { $0.logger = logger }).route { socket in
    for await event in socket.events {
        switch event {
        case .message(var message):
            message.text = message.text.uppercased()
            try await socket.send(message)
        case .error(let error):
            logger.info("chat: \(error)")
        case .done(let result):
            logger.info("chat closed: \(result)")
        }
    }
}

func webSocketRoute(_ head: HTTPRequestHead) -> WebSocketRoute? {
    path(of: head.uri) == "/chat" ? chat : nil
}

/// The answer to a plain HTTP request.
func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String) {
    path(of: head.uri) == "/" ? (.ok, "hello from NIO\n") : (.notFound, "404 page not found\n")
}

func responseHead(_ status: HTTPResponseStatus, _ body: String, extra: HTTPHeaders = [:]) -> HTTPResponseHead {
    var headers = extra
    headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
    headers.add(name: "Content-Length", value: "\(body.utf8.count)")
    return HTTPResponseHead(version: .http1_1, status: status, headers: headers)
}

// MARK: Classic upgrade

/// Plain HTTP, and the answer to a refused handshake: `WebSocketUpgrader` fires the
/// `HandshakeRefusal` down the pipeline before NIO hands the request on to this handler.
final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private var head: HTTPRequestHead?
    private var refusal: HandshakeRefusal?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            if let refusal {
                // A refused WebSocket handshake: its status, headers and reason, then close.
                self.refusal = nil
                respond(context: context, refusal.status, refusal.reason + "\n", extra: refusal.headers, close: true)
            } else {
                let (status, body) = answer(head)
                respond(context: context, status, body, close: !head.isKeepAlive)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let refused as HandshakeRefusal: refusal = refused // answered when its request arrives
        case is WebSocketUpgrader.NoRoute: break // not a WebSocket path: served as plain HTTP
        default: context.fireErrorCaught(error)
        }
    }

    private func respond(context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: String, extra: HTTPHeaders = [:], close: Bool) {
        var headers = extra
        if close { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(responseHead(status, body, extra: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in if close { channel.close(promise: nil) } }
    }
}

func runClassic() async throws {
    let upgrader = WebSocketUpgrader(route: { _, head in webSocketRoute(head) })
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let http = HTTPHandler()
                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withServerUpgrade: (
                    upgraders: [upgrader],
                    // The upgrade is done: take the HTTP handler out, or it would be handed the
                    // WebSocket bytes (and stop the process decoding them as HTTP parts).
                    completionHandler: { context in
                        context.pipeline.removeHandler(name: "http", promise: nil)
                    }))
                try channel.pipeline.syncOperations.addHandler(http, name: "http")
            }
        }
        .bind(host: "127.0.0.1", port: port).get()
    say("nio-example: listening on http://127.0.0.1:\(server.localAddress?.port ?? port) (classic upgrade)")
    try await server.closeFuture.get()
}

// MARK: Typed, async upgrade

enum Upgraded: Sendable {
    case webSocket(any Channel)
    case http(NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>)
}

func runTyped() async throws {
    let upgrader = TypedWebSocketUpgrader<Upgraded>(
        route: { _, head in webSocketRoute(head) },
        upgraded: { channel, _ in channel.eventLoop.makeSucceededFuture(.webSocket(channel)) })
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .bind(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                // `upgrader.configuration(notUpgrading:)` answers a refused handshake itself.
                try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                    configuration: .init(upgradeConfiguration: upgrader.configuration(notUpgrading: { channel in
                        channel.eventLoop.makeCompletedFuture {
                            .http(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                        }
                    })))
            }
        }
    say("nio-example: listening on http://127.0.0.1:\(server.channel.localAddress?.port ?? port) (typed upgrade)")
    try await withThrowingDiscardingTaskGroup { group in
        try await server.executeThenClose { upgrades in
            for try await upgrade in upgrades {
                group.addTask {
                    do {
                        switch try await upgrade.get() {
                        case .webSocket(let channel):
                            // The socket's own task runs the route's handler; this one waits for the end.
                            try await channel.closeFuture.get()
                        case .http(let http):
                            try await serveHTTP(http)
                        }
                    } catch {
                        logger.debug("connection ended: \(error)")
                    }
                }
            }
        }
    }
}

func serveHTTP(_ http: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
    try await http.executeThenClose { inbound, outbound in
        var head: HTTPRequestHead?
        for try await part in inbound {
            switch part {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let h = head else { continue }
                let (status, body) = answer(h)
                try await outbound.write(.head(responseHead(status, body)))
                try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                try await outbound.write(.end(nil))
                if !h.isKeepAlive { return }
            }
        }
    }
}

if typed {
    try await runTyped()
} else {
    try await runClassic()
}
