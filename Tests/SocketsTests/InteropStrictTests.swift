import Foundation
import NIOCore
import Sockets
import Synchronization
import Testing

/// Issue #11 ("strict under bad input"): the peers that misbehave on purpose are the raw
/// clients of Tests/Interop/client.py; each test also has a well-behaved client echo on the same
/// server while the misbehaving one is connected (`otherClientIsServed`).
extension InteropTests {
    // MARK: Item 15: a handler that never reads

    /// A push-only handler never reads, so its inbox (recvChannelBuffer 2) fills. The socket is
    /// still read (what follows is held, up to one maxMessageSize): after filling it, the client
    /// either sends a ping and a close, and gets the pong and the close handshake (1000, after
    /// closeTimeout, 0.5 s, since the messages before the close are never answered), or goes
    /// silent, and is closed with 1001 (pongTimeout) after pongWait (0.5 s). Either way the
    /// handler's `done` returns with that code. Before: the server stopped reading once the inbox
    /// was full, so neither the ping nor the close was seen, the pongWait clock was held, and the
    /// connection stayed open until the client gave up (3 s here).
    @Test(arguments: [("close", 1000), ("silent", 1001)])
    func pushOnlyHandlerStillSeesControlFrames(then: String, code: Int) async throws {
        let seen = Observations()
        try await withApp({ app in
            let options = Self.options {
                $0.recvChannelBuffer = 2
                $0.pingPeriod = .milliseconds(200)
                $0.pongWait = .milliseconds(500)
                $0.writeWait = .seconds(1)
            }
            app.get("/push", try Sockets.messages(options)) { _, socket in
                let pusher = Task {
                    var i = 0
                    while !Task.isCancelled {
                        do { try await socket.send("push \(i)") } catch { break }
                        i += 1
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                }
                let result = await socket.done
                pusher.cancel()
                await seen.add("done", result.code.rawValue)
            }
            Self.addEcho(app)
        }) { port in
            async let other = Self.otherClientIsServed(port)
            let r = try await InteropClient.run("fill_then", "ws://127.0.0.1:\(port)/push",
                                                ["--messages", "5", "--pause", "0.3", "--then", then, "--seconds", "3"])
            #expect(r["handshake_status"].int == 101, "\(r)")
            #expect(r["timed_out"].bool == false, "the server never closed: \(r)")
            #expect(r["close_code"].int == code, "\(r)")
            // closeTimeout or pongWait is 0.5 s; the rest is slack for two shared cores.
            #expect((r["close_at"].double ?? 99) < 2.0, "\(r)")
            #expect(r["eof"].bool == true || r["reset"].bool == true, "\(r)")
            #expect((r["texts"].int ?? 0) > 0, "the handler's pushes should arrive: \(r)")
            if then == "close" {
                #expect(r["pong"].bool == true, "the ping after the full inbox was not answered: \(r)")
            } else {
                #expect((r["pings"].int ?? 0) >= 1, "\(r)")
            }
            #expect(await seen.wait("done") == ["\(code)"])
            try await other
        }
    }

    // MARK: Support

    /// A plain echo route at /echo, for `otherClientIsServed`.
    static func addEcho(_ app: App) {
        let route = try! Sockets.raw(options())
        app.get("/echo", route) { _, socket in
            for await message in socket.receiver { try await socket.send(message) }
        }
    }

    /// A well-behaved websockets client gets its echoes (text, binary, 1000 bytes, fragments, a
    /// pong, the close handshake) from the same server, meanwhile.
    static func otherClientIsServed(_ port: Int) async throws {
        let e = try await InteropClient.run("echo", "ws://127.0.0.1:\(port)/echo", ["--big", "1000"])
        #expect(e["text"]["value"].string == "hello, sockets", "another client was not served: \(e)")
        #expect(e["big"]["length"].int == 1000, "\(e)")
        #expect(e["pong"]["received"].bool == true, "\(e)")
        #expect(e["close"]["rcvd_code"].int == 1000, "\(e)")
    }
}
