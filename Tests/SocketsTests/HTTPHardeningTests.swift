import Foundation
import NIOHTTP1
import Sockets
import Synchronization
import Testing

/// Issue #11, HTTP in front of the upgrade: each test asserts the exact status (or close) and
/// that the server goes on serving other clients afterwards. Peers are Tests/Interop/client.py
/// (raw sockets); part of the serialized interop suite, since some tests measure time.
extension InteropTests {
    /// An app with a plain route, a root route, an echo socket and a socket whose handler takes
    /// 1.5 s to echo, and the given HTTP options.
    func withHTTPApp(_ http: HTTPOptions = HTTPOptions(), _ body: (Int) async throws -> Void) async throws {
        let app = App(http: http)
        app.get("/") { _ in .text("root") }
        app.get("/plain") { _ in .text("plain") }
        app.get("/ws", try Sockets.messages(Self.options())) { _, socket in
            for await message in socket.receiver { try await socket.send(message) }
        }
        app.get("/slow-echo", try Sockets.messages(Self.options())) { _, socket in
            for await message in socket.receiver {
                try await Task.sleep(for: .milliseconds(1500))
                try await socket.send(message)
            }
        }
        try await withRunning(app, body)
    }

    /// The server still answers a plain GET and upgrades a socket that echoes.
    func expectStillServing(_ port: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let get = try await InteropClient.run("http", "ws://127.0.0.1:\(port)/plain", ["--plain"])
        #expect(get["status"].int == 200 && get["body"].string == "plain", "plain GET afterwards: \(get)", sourceLocation: sourceLocation)
        let echo = try await InteropClient.run("same_segment", "ws://127.0.0.1:\(port)/ws")
        #expect(echo["handshake_status"].int == 101 && echo["echoed"]["payload"].string == "early bird",
                "echo afterwards: \(echo)", sourceLocation: sourceLocation)
    }

    // MARK: Item 5

    /// Issue #11, item 5: NIO's parser stops after a request that asks for an upgrade, so every
    /// such request that is not upgraded (a refused handshake, an upgrade to a non-socket path,
    /// `Upgrade: h2c` as `curl --http2` sends) is answered with `Connection: close` and the
    /// connection closed; a plain keep-alive request is not.
    @Test func nonUpgradedUpgradeRequestsCloseTheConnection() async throws {
        try await withHTTPApp { port in
            func http(_ path: String, _ args: [String]) async throws -> InteropJSON {
                try await InteropClient.run("http", "ws://127.0.0.1:\(port)\(path)", args + ["--await-eof", "5"])
            }
            func expectClosed(_ r: InteropJSON, _ status: Int, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
                #expect(r["status"].int == status, "\(what): \(r)", sourceLocation: sourceLocation)
                #expect(r["headers"]["connection"].array.compactMap(\.string) == ["close"], "\(what): \(r)", sourceLocation: sourceLocation)
                #expect(r["closed_after"].bool == true, "\(what): not closed: \(r)", sourceLocation: sourceLocation)
            }
            expectClosed(try await http("/ws", ["--drop", "Sec-WebSocket-Key"]), 400, "refused handshake, 400")
            expectClosed(try await http("/ws", ["--set", "Origin: http://evil.example"]), 403, "refused handshake, 403")
            expectClosed(try await http("/ws", ["--method", "POST"]), 405, "refused handshake, 405")
            expectClosed(try await http("/ws", ["--set", "Sec-WebSocket-Version: 8"]), 426, "refused handshake, 426")
            let nonSocket = try await http("/plain", [])
            expectClosed(nonSocket, 200, "WebSocket upgrade to a plain route")
            #expect(nonSocket["body"].string == "plain")
            let h2c = ["--plain", "--set", "Connection: Upgrade, HTTP2-Settings", "--set", "Upgrade: h2c",
                       "--set", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"]
            let plainH2c = try await http("/plain", h2c)
            expectClosed(plainH2c, 200, "GET with Upgrade: h2c")
            #expect(plainH2c["body"].string == "plain")
            expectClosed(try await http("/ws", h2c), 400, "Upgrade: h2c to a socket route")
            // A plain keep-alive request keeps its connection (so the checks above can fail).
            let keep = try await InteropClient.run("http", "ws://127.0.0.1:\(port)/plain", ["--plain", "--await-eof", "1"])
            #expect(keep["status"].int == 200, "\(keep)")
            #expect(keep["headers"]["connection"].isNull, "\(keep)")
            #expect(keep["closed_after"].bool == false, "a plain keep-alive request closed its connection: \(keep)")
            try await expectStillServing(port)
        }
    }

    // MARK: Item 9

    /// Issue #11, item 9: a keep-alive connection that served a plain request is upgraded on its
    /// second request (NIO's upgrade handler only looked at the first); the socket then echoes
    /// and closes with 1000.
    @Test func upgradeOnALaterRequestOfAKeepAliveConnection() async throws {
        try await withHTTPApp { port in
            let r = try await InteropClient.run("keepalive_upgrade", "ws://127.0.0.1:\(port)/ws", ["--first-path", "/plain"])
            #expect(r["first_status"].int == 200, "\(r)")
            #expect(r["first_body"].string == "plain", "\(r)")
            #expect(r["first_connection"].array.isEmpty, "the first answer must keep the connection: \(r)")
            #expect(r["handshake_status"].int == 101, "\(r)")
            #expect(r["echoed"]["payload"].string == "after keep-alive", "\(r)")
            #expect(r["close_code"].int == 1000, "\(r)")
            try await expectStillServing(port)
        }
    }

    /// The upgrade request pipelined behind a plain one, with the first frame, all in one write:
    /// the plain request is answered, then the upgrade happens and the frame is not lost.
    @Test func upgradePipelinedBehindAPlainRequest() async throws {
        try await withHTTPApp { port in
            let r = try await InteropClient.run("keepalive_upgrade", "ws://127.0.0.1:\(port)/ws", ["--first-path", "/plain", "--together"])
            #expect(r["first_status"].int == 200, "\(r)")
            #expect(r["handshake_status"].int == 101, "\(r)")
            #expect(r["echoed"]["payload"].string == "after keep-alive", "\(r)")
            #expect(r["close_code"].int == 1000, "\(r)")
        }
    }

    /// A malformed request (a space in a header name) is answered 400 with a one-line reason and
    /// the connection closed (this server answers parse errors itself, not NIO's error handler,
    /// whose 400 has no body); an HTTP/2.0 request line is answered 505.
    @Test func malformedRequestIsAnswered400WithAReason() async throws {
        try await withHTTPApp { port in
            let r = try await InteropClient.run("http", "ws://127.0.0.1:\(port)/plain", ["--plain", "--set", "Bad Header: x", "--await-eof", "5"])
            #expect(r["status"].int == 400, "\(r)")
            let body = r["body"].string ?? ""
            #expect(body.hasPrefix("400 malformed HTTP request (") && body.hasSuffix(")\n") && body.filter { $0 == "\n" }.count == 1, "\(r)")
            #expect(r["headers"]["connection"].array.compactMap(\.string) == ["close"], "\(r)")
            #expect(r["closed_after"].bool == true, "\(r)")
            // A request line naming HTTP/2.0 (NIO's decoder speaks HTTP/1.x only): 505.
            let v2 = try await InteropClient.run("http", "ws://127.0.0.1:\(port)/plain", ["--plain", "--version", "HTTP/2.0", "--await-eof", "5"])
            #expect(v2["status"].int == 505, "\(v2)")
            #expect(v2["body"].string == "505 HTTP version not supported: this server speaks HTTP/1.x\n", "\(v2)")
            #expect(v2["closed_after"].bool == true, "\(v2)")
            try await expectStillServing(port)
        }
    }

    // MARK: Fault test

    /// Issue #11, fault test: 2,000 connections upgraded and then reset (RST) in the middle of a
    /// frame, in batches of 100, while 10 other clients echo throughout: every handshake is
    /// answered 101, every echo comes back, and the server's open descriptors return to their
    /// count before the storm (a few of slack for the test process's own pipes) within 15 s.
    @Test func resetStormLeavesNoDescriptorsBehind() async throws {
        try await withHTTPApp { port in
            try await expectStillServing(port) // the event loops and the concurrency pool are warm
            let baseline = Self.openDescriptors()
            #expect(baseline > 0, "cannot count /proc/self/fd")
            // The peak while the storm runs shows the server did hold the connections (so the
            // count afterwards can tell a leak).
            let peak = Mutex(baseline)
            let sampler = Task {
                while !Task.isCancelled {
                    let n = Self.openDescriptors()
                    peak.withLock { $0 = max($0, n) }
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            let r = try await InteropClient.run("reset_storm", "ws://127.0.0.1:\(port)/ws", ["--clients", "2000", "--limit-seconds", "110"],
                                                timeout: 120)
            sampler.cancel()
            let highest = peak.withLock { $0 }
            #expect(highest >= baseline + 50, "the storm never held 50 connections open at once: peak \(highest), baseline \(baseline)")
            #expect(r["statuses"]["101"].int == 2000, "\(r["statuses"]) \(r["errors"])")
            #expect(r["error_count"].int == 0, "\(r["errors"])")
            let echo = r["echo"].array
            #expect(echo.count == 10, "\(r)")
            for e in echo {
                #expect((e["sent"].int ?? 0) > 0 && e["ok"].int == e["sent"].int, "an echo client lost messages: \(e)")
            }
            let deadline = ContinuousClock.now + .seconds(15)
            var now = Self.openDescriptors()
            while now > baseline + 8 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                now = Self.openDescriptors()
            }
            #expect(now <= baseline + 8, "descriptors before the storm: \(baseline), peak \(highest), after: \(now) (storm took \(r["storm_seconds"]) s)")
            try await expectStillServing(port)
        }
    }

    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    // MARK: Item 6

    /// Issue #11, item 6: with a 1 s idle timeout and a 1 s request-head timeout, an idle
    /// connection is closed without an answer, half a request line and a head trickled one byte
    /// every 0.3 s are answered 408 and closed, and a keep-alive connection is closed once idle;
    /// an upgraded socket is not subject to either (its handler answers after 1.5 s).
    @Test func idleAndRequestHeadTimeouts() async throws {
        let http = HTTPOptions(idleTimeout: .seconds(1), requestHeadTimeout: .seconds(1))
        try await withHTTPApp(http) { port in
            let url = "ws://127.0.0.1:\(port)/plain"
            let idle = try await InteropClient.run("slow", url, ["--mode", "idle", "--limit-seconds", "8"])
            #expect(idle["closed"].bool == true, "\(idle)")
            #expect(idle["status"].isNull && idle["response"].string == "", "an idle connection gets no answer: \(idle)")
            #expect((0.8...5).contains(idle["elapsed"].double ?? -1), "\(idle)")

            let partial = try await InteropClient.run("slow", url, ["--mode", "partial", "--limit-seconds", "8"])
            #expect(partial["status"].int == 408, "\(partial)")
            #expect(partial["body"].string == "408 request head not received within 1 s\n", "\(partial)")
            #expect(partial["closed"].bool == true, "\(partial)")
            #expect((0.8...5).contains(partial["elapsed"].double ?? -1), "\(partial)")

            let trickle = try await InteropClient.run("slow", url, ["--mode", "trickle", "--interval", "0.3", "--limit-seconds", "8"])
            #expect(trickle["status"].int == 408, "\(trickle)")
            #expect(trickle["closed"].bool == true, "\(trickle)")
            #expect((0.8...5).contains(trickle["elapsed"].double ?? -1), "\(trickle)")
            #expect((trickle["bytes_sent"].int ?? 0) < 40, "the head timer must not restart with each byte: \(trickle)")

            let keepAlive = try await InteropClient.run("http", url, ["--plain", "--await-eof", "8"])
            #expect(keepAlive["status"].int == 200, "\(keepAlive)")
            #expect(keepAlive["closed_after"].bool == true, "\(keepAlive)")
            #expect((0.8...5).contains(keepAlive["closed_within"].double ?? -1), "\(keepAlive)")

            let slowSocket = try await InteropClient.run("keepalive_upgrade", "ws://127.0.0.1:\(port)/slow-echo", ["--first-path", "/plain"])
            #expect(slowSocket["handshake_status"].int == 101, "\(slowSocket)")
            #expect(slowSocket["echoed"]["payload"].string == "after keep-alive", "the HTTP idle timer closed an upgraded socket: \(slowSocket)")
            try await expectStillServing(port)
        }
    }

    /// Without a request-head timeout, the idle timeout bounds a head that stops arriving: 408
    /// with its own reason, then closed.
    @Test func idleTimeoutBoundsAStalledHeadWithoutAHeadTimeout() async throws {
        try await withHTTPApp(HTTPOptions(idleTimeout: .seconds(1), requestHeadTimeout: nil)) { port in
            let partial = try await InteropClient.run("slow", "ws://127.0.0.1:\(port)/plain", ["--mode", "partial", "--limit-seconds", "8"])
            #expect(partial["status"].int == 408, "\(partial)")
            #expect(partial["body"].string == "408 request head stalled for 1 s\n", "\(partial)")
            #expect(partial["closed"].bool == true, "\(partial)")
            #expect((0.8...5).contains(partial["elapsed"].double ?? -1), "\(partial)")
            try await expectStillServing(port)
        }
    }

    /// The defaults of ``HTTPOptions`` (documented in the README) and its validation.
    @Test func httpOptionsDefaultsAndValidation() async throws {
        let o = HTTPOptions()
        #expect(o.idleTimeout == .seconds(60))
        #expect(o.requestHeadTimeout == .seconds(10))
        #expect(o.maxRequestLineSize == 8192)
        #expect(o.maxHeadSize == 16384)
        #expect(o.initialReadSize == 512)
        #expect(o.maxReadSize == 65536)
        func field(_ o: HTTPOptions) -> String? {
            do { try o.validate(); return nil } catch { return error.field }
        }
        #expect(field(o) == nil)
        #expect(field(HTTPOptions(idleTimeout: nil, requestHeadTimeout: nil)) == nil)
        #expect(field(HTTPOptions(idleTimeout: .zero)) == "idleTimeout")
        #expect(field(HTTPOptions(requestHeadTimeout: .seconds(-1))) == "requestHeadTimeout")
        #expect(field(HTTPOptions(maxRequestLineSize: 0)) == "maxRequestLineSize")
        #expect(field(HTTPOptions(maxRequestLineSize: 8192, maxHeadSize: 4096)) == "maxHeadSize")
        #expect(field(HTTPOptions(initialReadSize: 63)) == "initialReadSize")
        #expect(field(HTTPOptions(initialReadSize: 4096, maxReadSize: 2048)) == "maxReadSize")
        #expect(field(HTTPOptions(initialReadSize: 64, maxReadSize: 1 << 20)) == nil)
        await #expect(throws: OptionsError.self) { _ = try await App(http: HTTPOptions(idleTimeout: .zero)).start(port: 0) }
        // A duration past what TimeAmount holds saturates instead of trapping.
        let huge = HTTPOptions(idleTimeout: .seconds(Int64.max), requestHeadTimeout: .seconds(Int64.max))
        #expect(field(huge) == nil)
        let app = App(http: huge)
        app.get("/plain") { _ in .text("plain") }
        let running = try await app.start(host: "127.0.0.1", port: 0)
        let r = try await InteropClient.run("http", "ws://127.0.0.1:\(running.port)/plain", ["--plain"])
        #expect(r["status"].int == 200, "\(r)")
        await running.shutdown()
    }

    // MARK: Item 8

    /// Issue #11, item 8: a request line over 8 KiB is answered 414 and a head over 16 KiB 431,
    /// each with `Connection: close` and a closed connection; just under the limits is served.
    @Test func requestLineAndHeadLimits() async throws {
        try await withHTTPApp { port in
            let url = "ws://127.0.0.1:\(port)/plain"
            func expectClosed(_ r: InteropJSON, _ status: Int, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
                #expect(r["status"].int == status, "\(what): \(r)", sourceLocation: sourceLocation)
                #expect(r["headers"]["connection"].array.compactMap(\.string) == ["close"], "\(what): \(r)", sourceLocation: sourceLocation)
                #expect(r["closed_after"].bool == true, "\(what): not closed: \(r)", sourceLocation: sourceLocation)
            }
            // "GET /plain?q=" + 9000 bytes + " HTTP/1.1"
            let longLine = try await InteropClient.run("http", url, ["--plain", "--pad-target", "9000", "--await-eof", "5"])
            expectClosed(longLine, 414, "9 KB request line")
            #expect(longLine["body"].string == "414 request line too long: 9022 bytes, over the 8192-byte limit\n", "\(longLine)")
            let okLine = try await InteropClient.run("http", url, ["--plain", "--pad-target", "7000"])
            #expect(okLine["status"].int == 200, "7 KB request line: \(okLine)")

            let bigHead = try await InteropClient.run("http", url, ["--plain", "--pad-headers", "35:2000", "--await-eof", "5"])
            expectClosed(bigHead, 431, "70 KB of headers")
            #expect(bigHead["body"].string == "431 request head too large: over the 16384-byte limit\n", "\(bigHead)")
            expectClosed(try await InteropClient.run("http", url, ["--plain", "--pad-headers", "9:2000", "--await-eof", "5"]), 431, "18 KB of headers")
            let okHead = try await InteropClient.run("http", url, ["--plain", "--pad-headers", "7:2000"])
            #expect(okHead["status"].int == 200, "14 KB of headers: \(okHead)")
            // A handshake is held to the same limits.
            expectClosed(try await InteropClient.run("http", "ws://127.0.0.1:\(port)/ws", ["--pad-headers", "9:2000", "--await-eof", "5"]), 431,
                         "18 KB handshake")
            try await expectStillServing(port)
        }
    }

    /// With smaller limits set in ``HTTPOptions``, the answers follow them.
    @Test func headLimitsFollowTheOptions() async throws {
        try await withHTTPApp(HTTPOptions(maxRequestLineSize: 100, maxHeadSize: 1000)) { port in
            let url = "ws://127.0.0.1:\(port)/plain"
            let line = try await InteropClient.run("http", url, ["--plain", "--pad-target", "100", "--await-eof", "5"])
            #expect(line["status"].int == 414, "\(line)")
            let head = try await InteropClient.run("http", url, ["--plain", "--pad-headers", "2:600", "--await-eof", "5"])
            #expect(head["status"].int == 431, "\(head)")
            #expect(head["closed_after"].bool == true, "\(head)")
            let ok = try await InteropClient.run("http", url, ["--plain", "--pad-headers", "1:600"])
            #expect(ok["status"].int == 200, "\(ok)")
        }
    }

    // MARK: Item 12

    /// Issue #11, item 12: absolute-form request targets (RFC 9112 §3.2.2) are routed by their
    /// path, for plain routes and for the handshake.
    @Test func absoluteFormTargets() async throws {
        try await withHTTPApp { port in
            let base = "http://127.0.0.1:\(port)"
            let plain = try await InteropClient.run("http", "ws://127.0.0.1:\(port)/", ["--plain", "--target", "\(base)/plain?x=1"])
            #expect(plain["status"].int == 200 && plain["body"].string == "plain", "\(plain)")
            let root = try await InteropClient.run("http", "ws://127.0.0.1:\(port)/", ["--plain", "--target", base])
            #expect(root["status"].int == 200 && root["body"].string == "root", "\(root)")
            let upper = try await InteropClient.run("http", "ws://127.0.0.1:\(port)/", ["--plain", "--target", "HTTP://127.0.0.1:\(port)/plain"])
            #expect(upper["status"].int == 200 && upper["body"].string == "plain", "\(upper)")
            let ws = try await InteropClient.run("http", "ws://127.0.0.1:\(port)/ws", ["--target", "\(base)/ws"])
            #expect(ws["status"].int == 101, "\(ws)")
            try await expectStillServing(port)
        }
    }
}

@Suite struct RequestTargetTests {
    func path(_ uri: String) -> String {
        Request(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)).path
    }

    /// Issue #11, item 12: the path of origin-form and absolute-form targets.
    @Test func pathsOfOriginAndAbsoluteForms() {
        #expect(path("/a/b?x=1") == "/a/b")
        #expect(path("/") == "/")
        #expect(path("http://example.com/a/b?x=1") == "/a/b")
        #expect(path("https://example.com:8443/a") == "/a")
        #expect(path("http://example.com") == "/")
        #expect(path("http://example.com?x=1") == "/")
        #expect(path("HTTP://example.com/A") == "/A")
        #expect(path("*") == "*")
    }
}
