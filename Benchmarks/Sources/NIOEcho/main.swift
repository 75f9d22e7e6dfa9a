// nio-echo: the baseline of Benchmarks/run-echo.sh. A WebSocket echo server written the way the
// SwiftNIO examples write one (NIOWebSocketServerUpgrader, which installs WebSocketFrameDecoder and
// WebSocketFrameEncoder), echoing frame by frame and flushing once per read batch
// (channelReadComplete). Every path, any Origin, no extensions.
//
//     nio-echo [--host 127.0.0.1] [--port 9002] [--max-frame-size 16777216]
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

var host = "127.0.0.1"
var port = 9002
var maxFrameSize = 16 << 20
var args = CommandLine.arguments.dropFirst()
func usage() -> Never {
    print("usage: nio-echo [--host HOST] [--port PORT] [--max-frame-size BYTES]")
    exit(2)
}
while let arg = args.popFirst() {
    switch arg {
    case "--host":
        guard let v = args.popFirst() else { usage() }
        host = v
    case "--port":
        guard let v = args.popFirst().flatMap({ Int($0) }) else { usage() }
        port = v
    case "--max-frame-size":
        guard let v = args.popFirst().flatMap({ Int($0) }), v > 0 else { usage() }
        maxFrameSize = v
    default: usage()
    }
}

/// Echoes data frames as they come (fragments stay fragments), answers ping with pong and close
/// with close. Writes during a read batch are flushed once, in channelReadComplete.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var awaitingClose = false
    private var pendingFlush = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            let reply = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.write(wrapOutboundOut(reply), promise: nil)
            pendingFlush = true
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.write(wrapOutboundOut(pong), promise: nil)
            pendingFlush = true
        case .connectionClose:
            guard !awaitingClose else { return }
            awaitingClose = true
            // Echo the status code (the first two bytes) back, then close TCP.
            var payload = frame.unmaskedData
            let code = payload.readSlice(length: min(2, payload.readableBytes)) ?? context.channel.allocator.buffer(capacity: 0)
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: code)
            context.writeAndFlush(wrapOutboundOut(close)).whenComplete { _ in
                context.close(promise: nil)
            }
        case .pong:
            break
        default:
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pendingFlush {
            pendingFlush = false
            context.flush()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)  // as sockets-echo (App.run)
let upgrader = NIOWebSocketServerUpgrader(
    maxFrameSize: maxFrameSize,
    automaticErrorHandling: true,
    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
    upgradePipelineHandler: { channel, _ in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(EchoHandler())
        }
    }
)

let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 256)  // as sockets-echo (App.run)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            let config: NIOHTTPServerUpgradeConfiguration = (
                upgraders: [upgrader], completionHandler: { _ in }
            )
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withServerUpgrade: config)
        }
    }
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.socketOption(.so_reuseaddr), value: 1)

let channel = try bootstrap.bind(host: host, port: port).wait()
print("nio-echo listening on \(channel.localAddress!)")
try channel.closeFuture.wait()
