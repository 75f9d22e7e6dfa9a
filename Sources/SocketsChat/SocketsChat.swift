import ArgumentParser
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Sockets
import SocketsPostgres

/// sockets-chat: the reference's chat example on Sockets. Rooms, names, join/leave notices, who is
/// in the room; with `--backplane postgres://…`, rooms span every instance on the same database.
///
///     swift run sockets-chat [--host 127.0.0.1] [--port 3000] [--backplane postgres://user@host/db]
///
/// - `/`                                    index page: pick a room and a name
/// - `/rooms/:name`                         the room page
/// - `/sockets/rooms/:name/:clientname`     the JSON socket (`Sockets.json(Message.self)`, default
///                                          options: same-origin pages only)
/// - `/stats`                               the hub's and the backplane's counters, as JSON
/// Pages and assets come from the `Public` folder (a SwiftPM resource) through `App.classic`'s
/// static-file middleware. Each room is a topic of the library's ``Hub``.
@main
struct SocketsChat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sockets-chat",
        abstract: "A chat server on Sockets: rooms, names, join and leave notices, who is in the room."
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on, 0 for any free one.")
    var port = 3000

    @Option(name: .customLong("public"), help: ArgumentHelp("Serve pages from DIR instead of the built-in ones (for editing them).", valueName: "DIR"))
    var publicFolder: String?

    @Option(help: ArgumentHelp("Messages one client may have waiting before it is dropped as too slow.", valueName: "N"))
    var clientQueue = 1024

    @Flag(help: "Log warnings and errors only (no request or connection lines).")
    var quiet = false

    @Option(help: ArgumentHelp("Share the rooms with every sockets-chat on this PostgreSQL database (LISTEN/NOTIFY); default: this process only.", valueName: "postgres://USER[:PASSWORD]@HOST[:PORT]/DB"))
    var backplane: String?

    @Option(help: ArgumentHelp("Serve https:// and wss:// with this PEM certificate chain (needs --tls-key); default: plain http.", valueName: "FILE"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The certificate's PEM private key (with --tls-cert).", valueName: "FILE"))
    var tlsKey: String?

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, not \(port)") }
        guard clientQueue > 0 else { throw ValidationError("--client-queue must be at least 1, not \(clientQueue)") }
        if let backplane {
            do {
                _ = try PostgresBackplane.Configuration(url: backplane)
            } catch let error as PostgresBackplaneError {
                throw ValidationError("--backplane: \(error.code.rawValue): \(error.message)")
            }
        }
    }

    func run() async throws {
        var logger = Logger(label: "sockets-chat")
        logger.logLevel = quiet ? .warning : .info
        // Default options, as the route's contract says: origin check on (same-host pages only),
        // the reference's timeouts and limits. Quiet only turns the socket log lines down.
        let socketOptions = quiet ? Options(logLevel: .warning) : Options()
        let publicFolder = publicFolder ?? builtInPublicFolder()
        var postgres: PostgresBackplane?
        if let backplane {
            var backplaneLogger = Logger(label: "sockets-chat.backplane")
            backplaneLogger.logLevel = .info
            postgres = try PostgresBackplane(url: backplane, logger: backplaneLogger)
        }
        let hub = Hub(outboxCapacity: clientQueue, backplane: postgres, logger: logger)
        let app = App.classic(publicFolder: publicFolder, logger: logger)
        try installChat(on: app, hub: hub, backplane: postgres, publicFolder: publicFolder, socketOptions: socketOptions)

        var tls: ServerTLS? = nil
        if let tlsCert, let tlsKey {
            do {
                tls = try ServerTLS(certificateChainFile: tlsCert, privateKeyFile: tlsKey)
            } catch {
                FileHandle.standardError.write(Data("sockets-chat: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
        let scheme = tls == nil ? "http" : "https"
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let (host, port) = (self.host, self.port)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The backplane connects (and reconnects) on its own; local rooms work meanwhile.
                group.addTask { try await hub.run() }
                // Serves until SIGINT or SIGTERM (a swift-service-lifecycle ServiceGroup), then
                // shuts down gracefully: open sockets get 1001.
                try await app.run(host: host, port: port, tls: tls) { port in
                    // One line on stdout, flushed at once: people read it, and tests wait for it
                    // to learn the port.
                    FileHandle.standardOutput.write(Data("sockets-chat: open \(scheme)://\(shownHost):\(port)/ in a browser (Ctrl-C to stop)\n".utf8))
                }
                // Stopping the hub says goodbye on the backplane: other instances announce our
                // members' leaves at once.
                group.cancelAll()
            }
        } catch {
            FileHandle.standardError.write(Data("sockets-chat: cannot listen on \(host):\(port): \(error) (another --port?)\n".utf8))
            throw ExitCode(1)
        }
    }
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
func installChat(on app: App, hub: Hub, backplane: PostgresBackplane?, publicFolder: String, socketOptions: Options) throws {
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

    app.get("/stats") { _ in
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = try encoder.encode(ChatStats(hub: hub, backplane: backplane))
        return Response(headers: ["Content-Type": "application/json"], body: ByteBuffer(bytes: body))
    }

    app.get("/sockets/rooms/:name/:clientname", try Sockets.json(Message.self, socketOptions)) { params, socket in
        guard let room = params["name"], let name = params["clientname"], isValidName(room), isValidName(name) else {
            await socket.disconnect(.policyViolation, reason: "invalid name: room and client names are 1-64 characters")
            return
        }
        // The room is a topic. The member's presence carries its join and leave notices, which
        // the hub delivers to the others on every instance, whatever ends the membership (the
        // socket closing, being dropped as too slow, its instance going away). The newcomer's
        // first message is the member list at the moment it joins.
        let presence = HubPresence(name: name, joined: try socket.prepare(.status(name, "joined")), left: try socket.prepare(.status(name, "left")))
        hub.subscribe(socket, to: room, presence: presence) { members in
            try? socket.prepare(Message(typ: "members", from: "", text: "", members: members))
        }
        for await event in socket.events {
            // `.error` (a message that is not JSON for `Message`) leaves the connection open and
            // is skipped; `.done` is the last event.
            guard case .message(var message) = event, !message.text.isEmpty else { continue }
            message.typ = "message"
            message.from = name
            message.members = nil
            guard let prepared = try? socket.prepare(message) else { continue }
            hub.publish(prepared, to: room, excluding: socket)
        }
        hub.unsubscribe(socket, from: room)
    }
}

/// What `/stats` shows.
struct ChatStats: Codable, Sendable {
    var topics: Int
    var subscribers: Int
    var published: Int
    var delivered: Int
    var disconnectedSlow: Int
    var receivedRemote: Int
    var backplane: Backplane?

    struct Backplane: Codable, Sendable {
        var instance: String
        var connected: Bool
        var relayed: Int
        var relayedThroughTable: Int
        var notRelayed: Int
        var received: Int
        var receivedThroughTable: Int
        var duplicates: Int
        var missed: Int
        var connections: Int
        var connectionLosses: Int
    }

    init(hub: Hub, backplane: PostgresBackplane?) {
        let h = hub.statistics
        topics = hub.topicCount
        subscribers = hub.subscriberCount
        published = h.published
        delivered = h.delivered
        disconnectedSlow = h.disconnectedSlow
        receivedRemote = h.receivedRemote
        if let backplane {
            let b = backplane.statistics
            self.backplane = Backplane(
                instance: backplane.instanceID, connected: backplane.isConnected, relayed: b.relayed,
                relayedThroughTable: b.relayedThroughTable, notRelayed: b.notRelayed, received: b.received,
                receivedThroughTable: b.receivedThroughTable, duplicates: b.duplicates, missed: b.missed,
                connections: b.connections, connectionLosses: b.connectionLosses
            )
        }
    }
}
