import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Sockets
import Testing

/// What a newcomer trips over (issue #12): custom codecs, options in any order, the close reason,
/// `ping()`, `Sender.disconnect`, `SocketRequest.query`, one logger with useful lines. The server
/// runs in-process; Tests/Interop/newcomer.py (Python's `websockets`, or a raw client) is the peer.
@Suite(.serialized)
struct NewcomerTests {
    // MARK: Close result, ping, disconnect, query

    /// `.done` and `done` carry the peer's code and reason; a ping on a closed socket throws.
    @Test func doneCarriesTheCloseCodeAndReason() async throws {
        let seen = Observations()
        try await withApp(App(), { app in
            app.get("/close", try Sockets.messages(InteropTests.options())) { _, socket in
                for await event in socket.events {
                    if case .done(let result) = event { await seen.add("events.done", result) }
                }
                await seen.add("done", await socket.done)
                do { try await socket.ping() } catch { await seen.add("ping after close", "\(error)") }
            }
        }) { port in
            let r = try await peer("talk", "ws://127.0.0.1:\(port)/close", ["--close", "4001", "--reason", "bye now"])
            #expect(r["close"]["sent_code"].int == 4001, "\(r)")
            #expect(await seen.wait("events.done") == ["4001 bye now"])
            #expect(await seen.wait("done") == ["4001 bye now"])
            #expect(await seen.wait("ping after close") == [WebSocketError.closed.description])
        }
    }

    /// `ping()` returns once the peer's pong is in (Python's client answers pings).
    @Test func pingReturnsWhenThePongArrives() async throws {
        let seen = Observations()
        try await withApp(App(), { app in
            app.get("/ping", try Sockets.messages(InteropTests.options())) { _, socket in
                do {
                    let rtt = try await socket.ping(timeout: .seconds(5))
                    await seen.add("ping", rtt < .seconds(5) ? "answered" : "too slow")
                    try await socket.send("answered")
                } catch {
                    await seen.add("ping", "\(error)")
                }
                _ = await socket.done
            }
        }) { port in
            let r = try await peer("talk", "ws://127.0.0.1:\(port)/ping", ["--expect", "1", "--close", "1000"])
            #expect(await seen.wait("ping") == ["answered"])
            #expect(r["received"].array.map(\.string) == ["answered"], "\(r)")
        }
    }

    /// A peer that never answers: `ping(timeout:)` throws `pingTimeout` after the timeout, and the
    /// connection is still usable (the handler then closes it with its own code).
    @Test func pingTimesOutWhenThePeerDoesNotAnswer() async throws {
        let seen = Observations()
        try await withApp(App(), { app in
            app.get("/ping", try Sockets.messages(InteropTests.options())) { _, socket in
                let start = ContinuousClock.now
                do {
                    try await socket.ping(timeout: .milliseconds(300))
                    await seen.add("ping", "answered")
                } catch {
                    await seen.add("ping", "\(error)")
                    await seen.add("waited", ContinuousClock.now - start >= .milliseconds(300))
                }
                await socket.disconnect(4000, reason: "no pong")
                _ = await socket.done
            }
        }) { port in
            let r = try await peer("silent", "ws://127.0.0.1:\(port)/ping", ["--seconds", "5"])
            #expect(r["status"].int == 101, "\(r)")
            let frames = r["frames"].array
            #expect(frames.first?["opcode"].int == 9, "expected the ping first: \(r)")
            #expect(frames.last?["opcode"].int == 8 && frames.last?["code"].int == 4000, "\(r)")
            #expect(await seen.wait("ping") == [WebSocketError.pingTimeout.description])
            #expect(await seen.wait("waited") == ["true"])
        }
    }

    /// A stored `Sender` can end the connection with a code and reason.
    @Test func senderDisconnectClosesWithCodeAndReason() async throws {
        try await withApp(App(), { app in
            app.get("/kick", try Sockets.messages(InteropTests.options())) { _, socket in
                let sender = socket.sender
                await sender.disconnect(4002, reason: "kicked")
                _ = await socket.done
            }
        }) { port in
            let r = try await peer("talk", "ws://127.0.0.1:\(port)/kick")
            #expect(r["close"]["rcvd_code"].int == 4002, "\(r)")
            #expect(r["close"]["rcvd_reason"].string == "kicked")
        }
    }

    /// `query`: percent-decoded, `+` as a space, first value wins, a bare name is `""`;
    /// `queryValues` gives every value of a name.
    @Test func queryParameters() async throws {
        try await withApp(App(), { app in
            app.get("/q", try Sockets.messages(InteropTests.options())) { _, socket in
                let q = socket.request.query
                try await socket.send(q.keys.sorted().map { "\($0)=\(q[$0]!)" }.joined(separator: "|"))
                try await socket.send(socket.request.queryValues("user").joined(separator: "|"))
                try await socket.send("\(socket.request.queryValues("absent").count)")
                _ = await socket.done
            }
        }) { port in
            let url = "ws://127.0.0.1:\(port)/q?room=go%20lang&user=ann+b&user=zed&flag&e=%E2%9C%93&bad=%zz"
            let r = try await peer("talk", url, ["--expect", "3", "--close", "1000"])
            #expect(r["received"].array.map(\.string) == ["bad=%zz|e=✓|flag=|room=go lang|user=ann b", "ann b|zed", "0"], "\(r)")
        }
    }

    // MARK: Codecs

    /// A codec that is not JSON: comma-separated integers in text frames.
    static let csv = SocketCodec<[Int]>(
        decode: { isText, payload in
            guard isText else { throw SocketDecodeFailure.unsupportedType("binary message on a CSV socket") }
            let fields = String(buffer: payload).split(separator: ",")
            let numbers = fields.compactMap { Int($0) }
            guard numbers.count == fields.count else { throw SocketDecodeFailure.malformed("not a list of integers") }
            return numbers
        },
        encode: { numbers, allocator in .text(allocator.buffer(string: numbers.map(String.init).joined(separator: ","))) })

    /// Messages decoded by the custom codec, a malformed one reported as 1007 and skipped, a
    /// binary one closing with 1003; options checked where the spec is made.
    @Test func customCodec() async throws {
        #expect(throws: OptionsError.self) { try Sockets.codec(Self.csv, Options { $0.recvChannelBuffer = 0 }) }
        do {
            _ = try SocketSpec(codec: Self.csv, options: Options { $0.maxFrameSize = 0 })
            Issue.record("bad options accepted")
        } catch {
            #expect(error.field == "maxFrameSize")
        }
        try await withApp(App(), { app in
            app.get("/sum", try Sockets.codec(Self.csv, InteropTests.options())) { _, socket in
                for await event in socket.events {
                    switch event {
                    case .message(let numbers): try await socket.send([numbers.reduce(0, +)])
                    case .error(let error): try await socket.send([-Int(error.code.rawValue)])
                    case .done: break
                    }
                }
            }
        }) { port in
            let r = try await peer("talk", "ws://127.0.0.1:\(port)/sum",
                                   ["--send", "1,2,3", "--send", "x", "--send", "4,5", "--expect", "3", "--close", "1000"])
            #expect(r["received"].array.map(\.string) == ["6", "-1007", "9"], "\(r)")
            let binary = try await peer("talk", "ws://127.0.0.1:\(port)/sum", ["--send", "b:0102"])
            #expect(binary["close"]["rcvd_code"].int == 1003, "\(binary)")
        }
    }

    struct Note: Codable, Sendable {
        var userName: String
        var at: Date
    }

    /// JSON with the caller's encoder and decoder: snake_case keys and ISO 8601 dates both ways
    /// (the default coders would refuse the message).
    @Test func jsonWithCallerSuppliedCoders() async throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        try await withApp(App(), { app in
            app.get("/notes", try Sockets.json(Note.self, encoder: encoder, decoder: decoder, InteropTests.options())) { _, socket in
                for await event in socket.events {
                    switch event {
                    case .message(let note): try await socket.send(note)
                    case .error(let error): try await socket.send(Note(userName: "error \(error.code)", at: Date(timeIntervalSince1970: 0)))
                    case .done: break
                    }
                }
            }
        }) { port in
            let r = try await peer("talk", "ws://127.0.0.1:\(port)/notes",
                                   ["--send", #"{"user_name":"ann","at":"2024-01-02T03:04:05Z"}"#, "--expect", "1", "--close", "1000"])
            #expect(r["received"].array.map(\.string) == [#"{"at":"2024-01-02T03:04:05Z","user_name":"ann"}"#], "\(r)")
        }
    }

    // MARK: Options

    /// Options in any order: a closure initializer and step-by-step `var` edits, the reference's
    /// names and defaults kept, validation naming the field.
    @Test func optionsInAnyOrder() {
        let o = Options {
            $0.recvChannelBuffer = 32
            $0.maxMessageSize = 4096
            $0.pongWait = .seconds(30)
            $0.pingPeriod = .seconds(20)
        }
        #expect(o.recvChannelBuffer == 32 && o.maxMessageSize == 4096 && o.pongWait == .seconds(30) && o.pingPeriod == .seconds(20))
        #expect(o.sendChannelBuffer == 10 && o.writeWait == .seconds(60) && o.allowedOrigin == "https?://{{host}}$")
        #expect(o.effectiveMaxFrameSize == 4096)
        #expect(throws: Never.self) { try o.validate() }
        var p = Options()
        p.allowAnyOrigin = true
        p.pingPeriod = .seconds(90) // not shorter than the default pongWait
        do {
            try p.validate()
            Issue.record("pingPeriod >= pongWait accepted")
        } catch {
            #expect(error.field == "pingPeriod")
        }
        do {
            _ = try Sockets.messages(Options { $0.closeTimeout = .zero })
            Issue.record("closeTimeout zero accepted")
        } catch {
            #expect(error.field == "closeTimeout")
        }
    }

    // MARK: Logging

    struct Oops: Error {}

    /// One logger from `App(logger:)` to every socket route that does not set its own; lines at
    /// the swift-log level of their severity; every connection line with the connection's
    /// number, remote address and path; close code and reason on close lines; the refused Origin
    /// and Host on the 403 line; a send that races the close is no error.
    @Test func oneLoggerWithConnectionMetadataAndLevels() async throws {
        let appLog = LogCapture()
        let routeLog = LogCapture()
        let app = App(logger: appLog.logger("app"))
        var port = 0
        try await withApp(app, { app in
            app.get("/big", try Sockets.messages(Options { $0.maxMessageSize = 16; $0.closeTimeout = .milliseconds(500) })) { _, socket in
                _ = await socket.done
            }
            app.get("/race", Sockets.messages()) { _, socket in
                _ = await socket.done
                try await socket.send("too late")
            }
            app.get("/throws", Sockets.messages()) { _, _ in throw Oops() }
            app.get("/boom") { _ in throw Oops() }
            app.get("/own", try Sockets.messages(Options { $0.logger = routeLog.logger("own") })) { _, socket in
                _ = await socket.done
            }
        }) { p in
            port = p
            let big = try await peer("talk", "ws://127.0.0.1:\(p)/big", ["--send", String(repeating: "x", count: 100)])
            #expect(big["close"]["rcvd_code"].int == 1009, "\(big)")
            _ = try await peer("talk", "ws://127.0.0.1:\(p)/race", ["--close", "1000"])
            let thrown = try await peer("talk", "ws://127.0.0.1:\(p)/throws")
            #expect(thrown["close"]["rcvd_code"].int == 1011, "\(thrown)")
            _ = try await peer("talk", "ws://127.0.0.1:\(p)/own", ["--close", "1000", "--reason", "mine"])
            let boom = try await peer("http", "http://127.0.0.1:\(p)/boom")
            #expect(boom["status"].int == 500, "\(boom)")
            let refused = try await peer("status", "ws://127.0.0.1:\(p)/big", ["--origin", "http://evil.example"])
            #expect(refused["status"].int == 403, "\(refused)")
            // The handlers finish just after their clients.
            _ = await appLog.wait { $0.filter { $0.message.hasPrefix("websocket closed") }.count >= 3 }
            _ = await routeLog.wait { $0.contains { $0.message.hasPrefix("websocket closed") } }
        }
        let lines = appLog.lines
        func on(_ path: String) -> [LogCapture.Line] { lines.filter { $0.metadata["ws.path"] == path } }

        // Every line of a connection says which connection it is.
        for path in ["/big", "/race", "/throws"] {
            let connection = on(path).filter { $0.metadata["ws.connection"] != nil }
            #expect(connection.count >= 2, "\(path): \(lines)")
            #expect(Set(connection.map { $0.metadata["ws.connection"]! }).count == 1, "one connection number per connection")
            #expect(connection.allSatisfy { $0.metadata["ws.remote"]?.contains("127.0.0.1") == true })
            #expect(connection.contains { $0.message.hasPrefix("websocket connected") && $0.level == .info })
        }
        // The peer's oversized message: a warning with the close code and reason.
        let tooBig = on("/big").first { $0.message.hasPrefix("closing connection") }
        #expect(tooBig?.level == .warning, "\(on("/big"))")
        #expect(tooBig?.metadata["ws.close_code"] == "1009")
        #expect(tooBig?.metadata["ws.close_reason"]?.isEmpty == false)
        #expect(on("/big").contains { $0.message.hasPrefix("websocket closed") && $0.metadata["ws.close_code"] == "1009" })
        // The refused handshake: a warning with the Origin and Host.
        let refusal = lines.first { $0.message.hasPrefix("websocket handshake refused") }
        #expect(refusal?.level == .warning, "\(lines)")
        #expect(refusal?.metadata["ws.origin"] == "http://evil.example")
        #expect(refusal?.metadata["ws.host"] == "127.0.0.1:\(port)")
        #expect(refusal?.metadata["http.status"] == "403")
        // Errors: only the socket handler that threw and the HTTP handler that threw (answered
        // 500); the send that raced the close is none.
        let errors = lines.filter { $0.level >= .error }
        #expect(errors.count == 2, "\(errors)")
        #expect(errors.contains { $0.message.hasPrefix("socket handler threw") && $0.metadata["ws.path"] == "/throws" }, "\(errors)")
        #expect(errors.contains { $0.message.hasPrefix("handler error, answered 500") }, "\(errors)")
        #expect(on("/race").allSatisfy { $0.level < .warning }, "\(on("/race"))")
        // A route with its own logger logs there, not to the app's.
        #expect(on("/own").isEmpty, "\(on("/own"))")
        let own = routeLog.lines
        #expect(own.contains { $0.message.hasPrefix("websocket connected") && $0.metadata["ws.path"] == "/own" }, "\(own)")
        #expect(own.contains { $0.message.hasPrefix("websocket closed") && $0.metadata["ws.close_reason"] == "mine" }, "\(own)")
    }

    // MARK: Helpers

    func peer(_ scenario: String, _ url: String, _ extra: [String] = []) async throws -> InteropJSON {
        try await InteropClient.run(scenario, url, extra, timeout: 60, script: InteropClient.newcomerScript)
    }

    func withApp(_ app: App, _ setup: (App) throws -> Void, _ body: (Int) async throws -> Void) async throws {
        try setup(app)
        try await withRunning(app, body)
    }
}

/// A swift-log handler that keeps every line, for tests.
final class LogCapture: Sendable {
    struct Line: Sendable, CustomStringConvertible {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
        var description: String { "\(level) \(message) \(metadata)" }
    }

    private let box = NIOLockedValueBox<[Line]>([])

    var lines: [Line] { box.withLockedValue { $0 } }

    func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in Handler(capture: self) }
    }

    /// Waits (up to 5 s) until `condition` holds for the lines so far.
    func wait(_ condition: ([Line]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if condition(lines) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(lines)
    }

    fileprivate func append(_ line: Line) { box.withLockedValue { $0.append(line) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            capture.append(Line(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
        }
    }
}
