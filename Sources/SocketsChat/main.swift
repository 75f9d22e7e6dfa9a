import Dispatch
import Foundation
import Logging
import NIOHTTP1
import Sockets
import Synchronization

/// sockets-chat: the reference's chat example on Sockets. Rooms, names, join/leave notices.
///
///     swift run sockets-chat [--host 127.0.0.1] [--port 3000]
///
/// - `/`                                    index page: pick a room and a name
/// - `/rooms/:name`                         the room page
/// - `/sockets/rooms/:name/:clientname`     the JSON socket (`Sockets.json(Message.self)`, default
///                                          options: same-origin pages only)
/// Pages and assets come from the `Public` folder (a SwiftPM resource) through `App.classic`'s
/// static-file middleware.

struct Config {
    var host = "127.0.0.1"
    var port = 3000
    var publicFolder: String?
    var clientQueue = 1024
    var quiet = false
}

func usage(_ status: Int32 = 2) -> Never {
    print("""
    usage: sockets-chat [--host HOST] [--port PORT] [--public DIR] [--client-queue N] [--quiet]

      --host HOST         address to listen on (default 127.0.0.1)
      --port PORT         port to listen on, 0 for any free one (default 3000)
      --public DIR        serve pages from DIR instead of the built-in ones (for editing them)
      --client-queue N    messages one client may have waiting before it is dropped as too
                          slow (default 1024)
      --quiet             log warnings and errors only (no request or connection lines)
    """)
    exit(status)
}

func parseArguments() -> Config {
    var config = Config()
    var args = CommandLine.arguments.dropFirst()
    while let arg = args.popFirst() {
        switch arg {
        case "--host":
            guard let v = args.popFirst() else { usage() }
            config.host = v
        case "--port":
            guard let v = args.popFirst().flatMap({ Int($0) }), (0...65535).contains(v) else { usage() }
            config.port = v
        case "--public":
            guard let v = args.popFirst() else { usage() }
            config.publicFolder = v
        case "--client-queue":
            guard let v = args.popFirst().flatMap({ Int($0) }), v > 0 else { usage() }
            config.clientQueue = v
        case "--quiet": config.quiet = true
        case "-h", "--help": usage(0)
        default: usage()
        }
    }
    return config
}

/// The built-in pages: the `Public` resource folder. SwiftPM puts it in a bundle next to the
/// executable, so `swift run sockets-chat` finds it from any working directory.
func builtInPublicFolder() -> String {
    guard let path = Bundle.module.path(forResource: "Public", ofType: nil) else {
        FileHandle.standardError.write(Data("sockets-chat: the Public resource folder is missing from the bundle; use --public DIR\n".utf8))
        exit(1)
    }
    return path
}

/// Sets up the routes of the chat on `app`.
func installChat(on app: App, hub: ChatHub, publicFolder: String, socketOptions: Options) throws {
    // The room page is a static file too: `/rooms/:name` answers with room.html, through the
    // same static-file middleware (the page reads the room from its own URL).
    let pages = Classic.static(publicFolder)
    app.get("/rooms/:name") { request in
        var head = request.head
        head.uri = "/room.html"
        return try await pages(Request(head: head, remoteAddress: request.remoteAddress)) { _ in
            .text("404 page not found", status: .notFound)
        }
    }

    app.get("/sockets/rooms/:name/:clientname", try Sockets.json(Message.self, socketOptions)) { params, socket in
        guard let room = params["name"], let name = params["clientname"], isValidName(room), isValidName(name) else {
            await socket.disconnect(.policyViolation, reason: "invalid name: room and client names are 1-64 characters")
            return
        }
        let member = hub.join(
            room: room, name: name,
            joinNotice: try socket.prepare(.status(name, "joined")), leaveNotice: try socket.prepare(.status(name, "left"))
        ) {
            Task { await socket.disconnect(.policyViolation, reason: "too slow: message queue full") }
        }
        await withDiscardingTaskGroup { group in
            // The writer: this client's outbox into its socket, at the socket's pace.
            group.addTask {
                writing: while let batch = await member.outbox.take() {
                    for message in batch {
                        do { try await socket.send(message) } catch { break writing }
                    }
                }
                // The socket is closing: refuse further messages rather than queue them.
                member.outbox.finish()
            }
            for await event in socket.events {
                // `.error` (a message that is not JSON for `Message`) leaves the connection
                // open and is skipped; `.done` is the last event.
                guard case .message(var message) = event, !message.text.isEmpty else { continue }
                message.typ = "message"
                message.from = name
                guard let prepared = try? socket.prepare(message) else { continue }
                hub.broadcast(prepared, from: member)
            }
            hub.leave(member)
        }
    }
}

let config = parseArguments()
var logger = Logger(label: "sockets-chat")
logger.logLevel = config.quiet ? .warning : .info
// Default options, as the route's contract says: origin check on (same-host pages only), the
// reference's timeouts and limits. Quiet only turns the socket log lines down.
let socketOptions = config.quiet ? Options(logLevel: .warning) : Options()
let publicFolder = config.publicFolder ?? builtInPublicFolder()
let hub = ChatHub(queueCapacity: config.clientQueue)
let app = App.classic(publicFolder: publicFolder, logger: logger)
try installChat(on: app, hub: hub, publicFolder: publicFolder, socketOptions: socketOptions)

let shownHost = config.host.contains(":") ? "[\(config.host)]" : config.host
do {
    // Serves until SIGINT or SIGTERM (a swift-service-lifecycle ServiceGroup), then shuts down
    // gracefully: open sockets get 1001.
    try await app.run(host: config.host, port: config.port) { port in
        // One line on stdout, flushed at once: people read it, and tests wait for it to learn the port.
        FileHandle.standardOutput.write(Data("sockets-chat: open http://\(shownHost):\(port)/ in a browser (Ctrl-C to stop)\n".utf8))
    }
} catch {
    FileHandle.standardError.write(Data("sockets-chat: cannot listen on \(config.host):\(config.port): \(error) (another --port?)\n".utf8))
    exit(1)
}
