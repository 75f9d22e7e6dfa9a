// hb-echo: the Hummingbird 2 peer of Benchmarks/run-echo-deflate.sh. A WebSocket echo server
// written the way hummingbird-websocket's README writes one (`.http1WebSocketUpgrade` and a
// `for try await` loop over `inbound.messages`), with hummingbird-websocket's permessage-deflate
// extension (`.perMessageDeflate`, HummingbirdWSCompression). Every path, any Origin.
//
//     hb-echo [--host 127.0.0.1] [--port 9003] [--no-context-takeover] [--level N]
//             [--max-message-size 1048576]
//
// --no-context-takeover: the server resets its compressor after every message and asks the client
// to do the same (server_no_context_takeover and client_no_context_takeover, which is what
// `perMessageDeflate(noContextTakeover: true)` states). Without it both sides keep their context.
// --level: zlib level, 0-9, or -1 for zlib's default (6, what `perMessageDeflate()` uses when no
// level is given). Default 1, the level sockets-echo and the load generator use.
import Hummingbird
import HummingbirdWSCompression
import HummingbirdWebSocket
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

var host = "127.0.0.1"
var port = 9003
var noContextTakeover = false
var level = 1
var maxMessageSize = 1 << 20
var args = CommandLine.arguments.dropFirst()
func usage() -> Never {
    print("usage: hb-echo [--host HOST] [--port PORT] [--no-context-takeover] [--level -1...9] [--max-message-size BYTES]")
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
    case "--no-context-takeover":
        noContextTakeover = true
    case "--level":
        guard let v = args.popFirst().flatMap({ Int($0) }), (-1...9).contains(v) else { usage() }
        level = v
    case "--max-message-size":
        guard let v = args.popFirst().flatMap({ Int($0) }), v > 0 else { usage() }
        maxMessageSize = v
    default: usage()
    }
}

var logger = Logger(label: "hb-echo")
logger.logLevel = .warning
let maxSize = maxMessageSize
let deflate = WebSocketExtensionFactory.perMessageDeflate(
    clientNoContextTakeover: noContextTakeover,
    serverNoContextTakeover: noContextTakeover,
    compressionLevel: level,
    maxDecompressedFrameSize: maxSize
)
let app = Application(
    router: Router(),
    server: .http1WebSocketUpgrade(
        configuration: .init(ws: .init(maxFrameSize: maxSize, extensions: [deflate]))
    ) { _, _, _ in
        .upgrade([:]) { inbound, outbound, _ in
            for try await message in inbound.messages(maxSize: maxSize) {
                switch message {
                case .text(let text): try await outbound.write(.text(text))
                case .binary(let bytes): try await outbound.write(.binary(bytes))
                }
            }
        }
    },
    configuration: .init(address: .hostname(host, port: port)),
    logger: logger
)
try await app.runService()
