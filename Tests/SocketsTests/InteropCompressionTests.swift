import Logging
import NIOCore
import Sockets
import Testing

/// permessage-deflate (RFC 7692) against independent peers: Python's websockets with its own
/// permessage-deflate in several parameter sets (Autobahn 12.x/13.x territory), and a raw client
/// that checks RSV1 and the compressed bytes on the wire with zlib.
extension InteropTests {
    static func compressedEcho(_ compression: Options.Compression?, compress: Bool = true) -> (App) throws -> Void {
        { app in
            app.get("/echo", try Sockets.messages(Self.options { $0.allowAnyOrigin = true; $0.compression = compression })) { _, socket in
                for await message in socket.receiver { try await socket.send(message, compress: compress) }
            }
            app.get("/bytes", try Sockets.raw(Self.options { $0.allowAnyOrigin = true; $0.compression = compression })) { _, socket in
                for await message in socket.receiver { try await socket.send(message) }
            }
        }
    }

    @Test(arguments: [
        ("dedicated", "", "permessage-deflate"),
        ("dedicated", "server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
        ("dedicated", "client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10"),
        ("dedicated", "server_no_context_takeover,client_no_context_takeover,client_max_window_bits=9",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9"),
        ("shared", "", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ("small", "client_max_window_bits=12", "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"),
        // Modes named by memory: the windows they stand for, with Python's default offer, and
        // negotiated down when the client asks for less.
        ("kb22-kb9", "", "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11"),
        ("default", "", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
        ("kb38-kb15", "server_max_window_bits=10,client_max_window_bits=9",
         "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"),
    ])
    func compressionWithPythonWebsockets(mode: String, offer: String, agreed: String) async throws {
        let settings: Options.Compression = switch mode {
        case "shared": Options.Compression(memory: .shared)
        case "small": Options.Compression(windowBits: 9, peerWindowBits: 9)
        case "kb22-kb9": .dedicated(compressor: .kb22, decompressor: .kb9)
        case "kb38-kb15": .dedicated(compressor: .kb38, decompressor: .kb15)
        case "default": .default
        default: Options.Compression() // window 15 both ways
        }
        try await withApp(Self.compressedEcho(settings)) { port in
            let r = try await InteropClient.run("pmd_ws", "ws://127.0.0.1:\(port)/bytes", ["--offer", offer])
            #expect(r["agreed"].string == agreed, "\(r)")
            #expect(r["echo_ok"].array.count == 7 && r["echo_ok"].array.allSatisfy { $0.bool == true }, "\(r)")
            #expect(r["close"]["rcvd_code"].int == 1000, "\(r)")
        }
    }

    /// On the wire: the echo of a 2600-byte JSON-like text comes back with RSV1 and inflates to the
    /// same text; with context takeover the second copy is smaller than the first.
    @Test func compressedFramesOnTheWire() async throws {
        try await withApp(Self.compressedEcho(.default)) { port in
            let r = try await InteropClient.run("pmd_raw", "ws://127.0.0.1:\(port)/echo")
            #expect(r["status"].int == 101, "\(r)")
            let echoes = r["echoes"].array
            #expect(echoes.count == 2, "\(r)")
            #expect(echoes.allSatisfy { $0["rsv1"].bool == true && $0["same"].bool == true }, "\(r)")
            let first = echoes.first?["wire_length"].int ?? 0, second = echoes.last?["wire_length"].int ?? 0
            #expect(first > 0 && first < 300 && second < first, "2600 bytes should shrink, more so the second time: \(r)")
            print("InteropTests compression: 2600-byte text sent as \(first) then \(second) bytes (context takeover)")
        }
    }

    /// A client that does not offer client_max_window_bits cannot be asked for a window: a small
    /// dedicated decompressor then states none (and inflates with a 32 KiB window), and the echo
    /// still works both ways.
    @Test func smallDecompressorWithoutClientMaxWindowBitsOffer() async throws {
        try await withApp(Self.compressedEcho(.dedicated(compressor: .kb22, decompressor: .kb8))) { port in
            let r = try await InteropClient.run("pmd_raw", "ws://127.0.0.1:\(port)/echo", ["--offer", "permessage-deflate"])
            #expect(r["extensions"].array.map(\.string) == ["permessage-deflate; server_max_window_bits=11"], "\(r)")
            let echoes = r["echoes"].array
            #expect(echoes.count == 2 && echoes.allSatisfy { $0["rsv1"].bool == true && $0["same"].bool == true }, "\(r)")
        }
    }

    /// Compression is off unless the route enables it: the offer gets no extension in answer.
    /// And a send with `compress: false` goes out without RSV1 even when it is on.
    @Test func compressionOffByDefaultAndPerSendSwitch() async throws {
        try await withApp(Self.compressedEcho(nil)) { port in
            let r = try await InteropClient.run("pmd_raw", "ws://127.0.0.1:\(port)/echo")
            #expect(r["status"].int == 101 && r["extensions"].isNull, "\(r)")
            // The client's compressed message is refused: RSV1 without the extension (1002).
            let echoes = r["echoes"].array
            #expect(echoes.first?["rsv1"].bool == false && echoes.first?["same"].bool == true, "\(r)")
        }
        try await withApp(Self.compressedEcho(.default, compress: false)) { port in
            let r = try await InteropClient.run("pmd_raw", "ws://127.0.0.1:\(port)/echo")
            #expect(r["extensions"].array.first?.string == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", "\(r)")
            let echoes = r["echoes"].array
            #expect(echoes.count == 2 && echoes.allSatisfy { $0["rsv1"].bool == false && $0["same"].bool == true }, "\(r)")
        }
    }

    /// Shared mode (`client_no_context_takeover` stated, inflaters lent per message): a raw client
    /// that keeps its deflate context anyway sends a second message referring back into its first.
    /// That connection alone is closed with 1007 ("invalid compressed data", the C engine's
    /// CWS_ERR_INFLATE) and a warning is logged with the code; four Python `websockets`
    /// connections opened before it (one on its event-loop thread, by NIO's round-robin on up to
    /// four threads) echo compressed messages before and after, and close with 1000.
    @Test func clientKeepingContextInSharedModeFailsAlone() async throws {
        let log = LogCapture()
        let app = App(logger: log.logger("pmd"))
        let setup = Self.compressedEcho(.shared)
        try setup(app)
        var result: InteropJSON?
        try await withRunning(app) { port in
            result = try await InteropClient.run("pmd_keeps_context", "ws://127.0.0.1:\(port)/bytes", ["--clients", "4"])
        }
        let r = try #require(result)
        #expect(r["good_agreed"].string == "permessage-deflate; server_no_context_takeover; client_no_context_takeover", "\(r)")
        #expect(r["good_before"].array.count == 4 && r["good_before"].array.allSatisfy { $0.bool == true }, "\(r)")
        let bad = r["bad"]
        #expect(bad["status"].int == 101 && bad["agreed"].array.map(\.string) == ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"], "\(r)")
        #expect(bad["first_echo_opcode"].int == 1, "the first message inflates (nothing to refer back to): \(r)")
        #expect((bad["second_length"].int ?? 0) < (bad["first_length"].int ?? 0) / 4, "the second message refers back: \(r)")
        #expect(bad["close"]["close_code"].int == 1007, "\(r)")
        #expect(bad["close"]["close_reason"].string == "invalid compressed data", "\(r)")
        #expect(r["good_after"].array.count == 12 && r["good_after"].array.allSatisfy { $0.bool == true }, "\(r)")
        #expect(r["good_close_codes"].array.map(\.int) == [1000, 1000, 1000, 1000], "\(r)")
        // One warning, for the bad connection, with the close code and reason.
        let closing = log.lines.filter { $0.message.hasPrefix("closing connection") && $0.level >= .warning }
        #expect(closing.count == 1 && closing.first?.level == .warning, "\(log.lines)")
        #expect(closing.first?.metadata["ws.close_code"] == "1007", "\(log.lines)")
        #expect(closing.first?.metadata["ws.close_reason"] == "invalid compressed data", "\(log.lines)")
        #expect(closing.first?.message == "closing connection: \(WebSocketError(code: .invalidPayload, reason: "invalid compressed data"))", "\(log.lines)")
    }
}
