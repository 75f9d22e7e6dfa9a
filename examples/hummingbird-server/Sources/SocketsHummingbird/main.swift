// A Hummingbird 2 server: its router answers plain HTTP, and /chat is a Sockets JSON route
// (`Sockets.json`) whose messages come back with the text upper-cased.
//
//     swift run --package-path examples/hummingbird-server SocketsHummingbird [--port 8080]
//
// examples/hummingbird-server/check.sh builds it and drives it with Tests/Interop/newcomer.py.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Hummingbird
import Logging
import NIOHTTP1
import Sockets

struct Message: Codable, Sendable {
    var user: String
    var text: String
}

let arguments = CommandLine.arguments
let port = arguments.firstIndex(of: "--port").flatMap { Int(arguments[$0 + 1]) } ?? 8080
let logger = Logger(label: "hummingbird-example")

let router = Router()
router.get("/") { _, _ in "hello from Hummingbird\n" }

// Built once, with `try`: options that do not validate stop the server here, naming the field.
let chat = try Sockets.json(Message.self, Options { $0.logger = logger }).route { socket in
    for await message in socket.receiver {
        try await socket.send(Message(user: message.user, text: message.text.uppercased()))
    }
}

let app = Application(
    router: router,
    server: .sockets(route: { head in
        head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0] == "/chat" ? chat : nil
    }),
    configuration: .init(address: .hostname("127.0.0.1", port: port)),
    onServerRunning: { channel in
        var line = "hummingbird-example: listening on http://127.0.0.1:\(channel.localAddress?.port ?? port)\n"
        line.withUTF8 { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
    },
    logger: logger
)
try await app.runService()
