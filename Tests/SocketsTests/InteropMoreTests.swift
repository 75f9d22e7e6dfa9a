import Dispatch
import Foundation
import Sockets
import Testing

extension InteropTests {
    /// Bytes that arrive in the same segment as the upgrade request (a first frame and a close)
    /// are not lost: NIO's decoder forwards them and the upgrade handler replays them to us.
    @Test func bytesAfterTheRequestHeadAreNotLost() async throws {
        try await withApp({ app in
            app.get("/echo", try Sockets.raw(Self.options { $0.allowAnyOrigin = true })) { _, socket in
                for await message in socket.receiver { try await socket.send(message) }
            }
        }) { port in
            let r = try await InteropClient.run("same_segment", "ws://127.0.0.1:\(port)/echo")
            #expect(r["handshake_status"].int == 101, "\(r)")
            #expect(r["echoed"]["opcode"].int == 1, "the early frame was not echoed: \(r)")
            #expect(r["echoed"]["payload"].string == "early bird", "\(r)")
            #expect(r["close_code"].int == 1000, "\(r)")
        }
    }

    /// An oversized request head is refused with an error status and the connection closed; the
    /// server keeps serving others.
    @Test func oversizedRequestHeadIsRefused() async throws {
        try await withApp({ app in
            app.get("/echo", try Sockets.raw(Self.options { $0.allowAnyOrigin = true })) { _, socket in
                for await message in socket.receiver { try await socket.send(message) }
            }
        }) { port in
            let r = try await InteropClient.run("huge_head", "ws://127.0.0.1:\(port)/echo", ["--size", "300000"])
            if let status = r["status"].int {
                #expect((400...499).contains(status), "\(r)")
                #expect(r["closed_after"].bool == true, "\(r)")
            } else {
                // The server may close before the client has written it all; never a 101.
                #expect(r["status"].isNull, "\(r)")
            }
            let after = try await InteropClient.run("echo", "ws://127.0.0.1:\(port)/echo", ["--big", "1000"])
            #expect(after["text"]["value"].string == "hello, sockets", "\(after)")
        }
    }

    /// Graceful shutdown: an open socket gets 1001 and a completed close handshake, and shutdown
    /// returns once it is done.
    @Test func shutdownClosesOpenSocketsWith1001() async throws {
        let seen = Observations()
        let app = App()
        app.get("/wait", try Sockets.messages(Self.options())) { _, socket in
            await seen.add("connected", 1)
            for await _ in socket.receiver {}
            await seen.add("done", (await socket.done).code.rawValue)
        }
        let running = try await app.start(host: "127.0.0.1", port: 0)
        async let client = InteropClient.run("await_close", "ws://127.0.0.1:\(running.port)/wait")
        #expect(await seen.wait("connected") == ["1"])
        let start = ContinuousClock.now
        await running.shutdown()
        let took = ContinuousClock.now - start
        let r = try await client
        #expect(r["close"]["rcvd_code"].int == 1001, "\(r)")
        #expect(r["timed_out"].bool == false, "\(r)")
        #expect(await seen.wait("done") == ["1001"])
        #expect(took < .seconds(3), "shutdown took \(took)")
    }

    /// The `sockets-echo` executable (built next to this test bundle, started with
    /// `--compression on`) against the Python client: text, binary, fragments, a ping, 100 KB (all
    /// compressed, as websockets offers permessage-deflate by default), then websockets with
    /// server_no_context_takeover; it exits cleanly on SIGTERM.
    @Test func socketsEchoExecutable() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("sockets-echo")
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [binary, bundleDir.deletingLastPathComponent().appendingPathComponent("sockets-echo")]
        let found = try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
                                 "sockets-echo not found next to \(CommandLine.arguments[0]); build it with swift build --build-tests")
        let port = 20000 + Int.random(in: 0..<20000)
        let process = Process()
        process.executableURL = found
        process.arguments = ["--port", "\(port)", "--compression", "on"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // Wait until it accepts connections.
        var ready = false
        for _ in 0..<100 where !ready {
            try await Task.sleep(for: .milliseconds(50))
            ready = Self.canConnect(port: port)
        }
        #expect(ready, "sockets-echo did not start listening on \(port)")
        let r = try await InteropClient.run("echo", "ws://127.0.0.1:\(port)/any/path")
        #expect(r["text"]["value"].string == "hello, sockets", "\(r)")
        #expect(r["binary"]["hex"].string == "000102feff")
        #expect(r["fragmented"]["value"].string == "fragmented ✓")
        #expect(r["big"]["length"].int == 100_000)
        #expect(r["pong"]["received"].bool == true)
        let z = try await InteropClient.run("pmd_ws", "ws://127.0.0.1:\(port)/x", ["--offer", "server_no_context_takeover"])
        #expect(z["agreed"].string == "permessage-deflate; server_no_context_takeover", "\(z)")
        #expect(z["echo_ok"].array.count == 7 && z["echo_ok"].array.allSatisfy { $0.bool == true }, "\(z)")
        process.terminate() // SIGTERM: graceful shutdown
        let exited = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let once = Once(c)
            Thread.detachNewThread { process.waitUntilExit(); once.resume(true) }
            DispatchQueue.global().asyncAfter(deadline: .now() + 10) { once.resume(false) }
        }
        #expect(exited, "sockets-echo did not exit within 10 s of SIGTERM")
        if exited { #expect(process.terminationStatus == 0) }
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
