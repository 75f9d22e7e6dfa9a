import Sockets
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// sockets-echo: echoes every text and binary message on every path; any or no Origin accepted.
/// For conformance and load testing.
///
///     swift run sockets-echo [--host 127.0.0.1] [--port 9001] [--max-message-size 16777216]
var host = "127.0.0.1"
var port = 9001
var maxMessageSize = 16 << 20
var compression: Options.Compression? = nil
var args = CommandLine.arguments.dropFirst()
func usage() -> Never {
    print("usage: sockets-echo [--host HOST] [--port PORT] [--max-message-size BYTES] [--compression off|on|shared|small]")
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
    case "--max-message-size":
        guard let v = args.popFirst().flatMap({ Int($0) }), v > 0 else { usage() }
        maxMessageSize = v
    case "--compression":
        // on: dedicated deflater, window 15; shared: one deflater per thread (no context
        // takeover); small: dedicated with a 512-byte window (about 10 KB per connection).
        switch args.popFirst() {
        case "off": compression = nil
        case "on": compression = .default
        case "shared": compression = Options.Compression(memory: .shared)
        case "small": compression = Options.Compression(windowBits: 9, peerWindowBits: 9)
        default: usage()
        }
    case "-h", "--help": usage()
    default: usage()
    }
}

let options = Options(
    logLevel: .warning, maxMessageSize: maxMessageSize, maxFrameSize: maxMessageSize,
    allowAnyOrigin: true, compression: compression
)
let app = App()
app.any("/*", try Sockets.raw(options)) { _, socket in
    for await message in socket.receiver {
        try? await socket.send(message)
    }
}
try await app.run(host: host, port: port)
