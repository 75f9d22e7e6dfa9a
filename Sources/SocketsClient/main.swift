import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import Sockets

/// sockets-client: a small wscat. Connects to a ws:// or wss:// URL, sends each line of standard
/// input as a text message (and `--binary` files as binary messages), prints what arrives, and
/// exits with a status derived from the close code.
@main
struct SocketsClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sockets-client",
        abstract: "Connects to a WebSocket server, sends standard input's lines as text messages and prints what arrives.",
        discussion: """
        Binary messages that arrive are printed as "<binary N bytes>" followed by up to 32 bytes in hex. At the end of standard input the client closes with 1000 and waits for the server's answer.

        Exit status: 0 when the connection closed with 1000; the close code minus 1000 for 1001-1015 (1006, a connection lost without a close, is 6); 64 for an application code (3000-4999); 65 when the connection could not be opened (refused handshake, TLS, timeout: the reason is printed on standard error).

        Example, talking to sockets-chat (which checks Origin):
          sockets-client ws://127.0.0.1:3000/sockets/rooms/lobby/ann --header "Origin: http://127.0.0.1:3000"
        then type {"text":"hello"}: the other members of the room see it.
        """)

    @Argument(help: "The ws:// or wss:// URL to connect to.")
    var url: String

    @Option(name: .customLong("binary"), help: "Send this file's contents as one binary message before reading standard input (repeatable).")
    var binaryFiles: [String] = []

    @Flag(help: "Offer permessage-deflate (compression).")
    var compression = false

    @Option(help: "Offer this subprotocol (repeatable, in order of preference).")
    var subprotocol: [String] = []

    @Option(help: "Add a request header, \"Name: value\" (repeatable).")
    var header: [String] = []

    @Flag(help: "Accept any TLS certificate (self-signed test servers only).")
    var insecure = false

    @Option(help: "Trust the CA certificates in this PEM file instead of the system's.")
    var caFile: String?

    @Option(help: "The largest message accepted and sent, in bytes.")
    var maxMessageSize = 1 << 20

    @Option(help: "Seconds to wait for the TCP connection.")
    var connectTimeout = 10

    @Option(help: "Seconds to wait for the TLS handshake and the server's handshake response.")
    var handshakeTimeout = 10

    @Flag(help: "Do not print the connection and close lines on standard error.")
    var quiet = false

    func validate() throws {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), scheme == "ws" || scheme == "wss" else {
            throw ValidationError("the URL must start with ws:// or wss://")
        }
        for h in header where !h.contains(":") { throw ValidationError("--header \"\(h)\": expected \"Name: value\"") }
        guard maxMessageSize > 0 else { throw ValidationError("--max-message-size must be positive") }
        guard connectTimeout > 0, handshakeTimeout > 0 else { throw ValidationError("timeouts must be positive") }
    }

    func run() async throws {
        var headers = HTTPHeaders()
        for h in header {
            let colon = h.firstIndex(of: ":")!
            headers.add(name: String(h[..<colon]).trimmingCharacters(in: .whitespaces),
                        value: String(h[h.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        let client = WebSocketClientOptions(
            headers: headers, subprotocols: subprotocol, connectTimeout: .seconds(connectTimeout),
            handshakeTimeout: .seconds(handshakeTimeout),
            tls: WebSocketClientTLS(trustRootsFile: caFile, verifyCertificates: !insecure))
        let options = Options(logLevel: .error, maxMessageSize: maxMessageSize,
                              compression: compression ? CompressionSettings() : nil)
        let socket: Socket<WebSocketMessage>
        do {
            socket = try await WebSocketClient.connect(to: URL(string: url)!, try Sockets.raw(options), options: client)
        } catch {
            FileHandle.standardError.write(Data("sockets-client: \(error)\n".utf8))
            throw ExitCode(65)
        }
        if !quiet {
            let sub = socket.subprotocol.map { " (subprotocol \($0))" } ?? ""
            FileHandle.standardError.write(Data("sockets-client: connected to \(url)\(sub)\n".utf8))
        }
        let printer = Task {
            for await event in socket.events {
                switch event {
                case .message(.text(let b)): Self.output(String(buffer: b))
                case .message(.binary(let b)):
                    let hex = b.readableBytesView.prefix(32).map { String(format: "%02x", $0) }.joined()
                    Self.output("<binary \(b.readableBytes) bytes> \(hex)")
                case .error(let e): FileHandle.standardError.write(Data("sockets-client: \(e)\n".utf8))
                case .done: return
                }
            }
        }
        let files = binaryFiles
        let sender = Task {
            do {
                for file in files {
                    let data = try Data(contentsOf: URL(fileURLWithPath: file))
                    try await socket.send(.binary(ByteBuffer(bytes: data)))
                }
                for await line in Self.standardInputLines() { try await socket.send(.text(ByteBuffer(string: line))) }
            } catch {
                FileHandle.standardError.write(Data("sockets-client: \(error)\n".utf8))
            }
            await socket.disconnect(.normalClosure)
        }
        let code = await socket.done.code
        sender.cancel()
        await printer.value
        if !quiet { FileHandle.standardError.write(Data("sockets-client: closed with \(code.rawValue)\n".utf8)) }
        let status = Self.exitStatus(code.rawValue)
        if status != 0 { throw ExitCode(status) }
    }

    /// One line on standard output, written at once (no buffering: a pipe reader sees each
    /// message as it arrives).
    static func output(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func exitStatus(_ code: UInt16) -> Int32 {
        switch code {
        case 1000: 0
        case 1001...1015: Int32(code) - 1000
        case 3000...4999: 64
        default: 1
        }
    }

    /// Lines of standard input, read on a thread of their own (a blocking read must not hold a
    /// thread of the concurrency pool).
    static func standardInputLines() -> AsyncStream<String> {
        AsyncStream { continuation in
            Thread.detachNewThread {
                while let line = readLine(strippingNewline: true) { continuation.yield(line) }
                continuation.finish()
            }
        }
    }
}
