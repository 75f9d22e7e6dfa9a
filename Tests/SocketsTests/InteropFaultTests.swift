import Foundation
import NIOCore
import Sockets
import Synchronization
import Testing

/// Fault tests of issue #11, bounded in time: a peer that stops reading mid-message, and a
/// graceful shutdown with messages in flight. (The other two: 2,000 connections reset mid-frame
/// while others echo is HTTPHardeningTests' reset storm; a flood of pings from a non-reader is
/// `pingFloodFromANonReader` in InteropStrictTests.)
extension InteropTests {
    /// A peer that reads the start of a large message (100 KB of 4 MiB) and then stops reading,
    /// with a 4 KiB receive buffer. The handler sends 4 MiB messages in a loop (a fresh buffer
    /// each, sendChannelBuffer 1): at most a few of them are ever accepted by `send` (server
    /// memory bounded by them, not by the loop), the connection is ended by writeWait (1 s) with
    /// 1001 "write did not complete within writeWait" and TCP closed, the blocked `send` throws,
    /// and the handler ends.
    @Test func peerThatStopsReadingMidMessage() async throws {
        let seen = Observations()
        try await withApp({ app in
            let options = Self.options {
                $0.maxMessageSize = 4 << 20
                $0.sendChannelBuffer = 1
                $0.writeWait = .seconds(1)
                $0.pingPeriod = .milliseconds(500)
                $0.pongWait = .seconds(10)
            }
            app.get("/big", try Sockets.bytes(options)) { _, socket in
                var sent = 0
                while true {
                    do { try await socket.send(ByteBuffer(repeating: UInt8(truncatingIfNeeded: sent), count: 4 << 20)) } catch { break }
                    sent += 1
                }
                await seen.add("sent", sent)
                let result = await socket.done
                await seen.add("done", "\(result.code.rawValue) \(result.reason)")
            }
            Self.addEcho(app)
        }) { port in
            async let other = Self.otherClientIsServed(port)
            let r = try await InteropClient.run("stop_mid_message", "ws://127.0.0.1:\(port)/big",
                                                ["--size", "100000", "--rcvbuf", "4096", "--seconds", "3"])
            #expect(r["handshake_status"].int == 101, "\(r)")
            #expect((r["read_before_stop"].int ?? 0) >= 100_000, "\(r)")
            #expect(r["first_bytes"].string == "827f", "a binary frame with a 64-bit length: \(r)")
            let end = r["end"].string
            #expect(end == "eof" || end == "reset", "the server did not end the connection: \(r)")
            #expect(await seen.wait("done") == ["1001 write did not complete within writeWait"])
            let sent = Int(await seen.wait("sent").first ?? "") ?? -1
            #expect(sent >= 1 && sent <= 4, "\(sent) sends of 4 MiB accepted against a peer that stopped reading")
            try await other
        }
    }

    /// Graceful shutdown with messages in flight: 5 clients each send up to 400 texts, one every
    /// 5 ms, to an echo handler; once the server has accepted 150 of them it is shut down.
    ///
    /// "Accepted": the handler took the message from `socket.receiver` and its echo's
    /// `socket.send` returned without throwing. (A message still in the inbox, or taken after
    /// the shutdown began and refused by `send` with `WebSocketError.closed`, is not accepted.)
    ///
    /// Every accepted message is delivered: each client receives exactly the echoes of its
    /// accepted messages, in order, and then the close 1001. The shutdown happened mid-stream:
    /// fewer than all 2,000 were accepted.
    @Test func gracefulShutdownLosesNoAcceptedMessage() async throws {
        let accepted = Mutex<[String: Int]>([:])
        let app = App()
        app.get("/echo", try Sockets.messages(Self.options())) { _, socket in
            for await message in socket.receiver {
                do { try await socket.send(message) } catch { break }
                let client = String(message.prefix { $0 != " " })
                accepted.withLock { $0[client, default: 0] += 1 }
            }
        }
        let running = try await app.start(host: "127.0.0.1", port: 0)
        async let stream = InteropClient.run("stream", "ws://127.0.0.1:\(running.port)/echo",
                                             ["--clients", "5", "--messages", "400", "--interval", "0.005"])
        let deadline = ContinuousClock.now + .seconds(10)
        while accepted.withLock({ $0.values.reduce(0, +) }) < 150 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        await running.shutdown()
        let r = try await stream
        let counts = accepted.withLock { $0 }
        let clients = r["clients"].array
        #expect(clients.count == 5, "\(r)")
        for (i, c) in clients.enumerated() {
            let n = counts["c\(i)"] ?? 0
            let echoes = c["echoes"].array.compactMap(\.string)
            #expect(echoes == (0..<n).map { "c\(i) m\($0)" }, "client \(i): \(n) accepted, \(echoes.count) echoes received: \(c)")
            #expect(c["close"]["rcvd_code"].int == 1001, "client \(i): \(c)")
            #expect(c["timed_out"].bool == false, "client \(i): \(c)")
        }
        let total = counts.values.reduce(0, +)
        print("InteropTests graceful shutdown: \(total) of 2000 messages accepted before the shutdown: \(counts.sorted { $0.key < $1.key })")
        #expect(total >= 150 && total < 2000, "the shutdown was not mid-stream: \(total) accepted")
    }
}
