import Foundation
import MetricsTestKit
import NIOCore
import NIOHTTP1
import Sockets
import Testing

/// The metrics of a scripted session, counted by swift-metrics' test factory: one refused
/// handshake (no Origin: 403), one accepted; three messages each way (one compressed), our
/// client's 4001 close echoed; the open-connections meter back to 0 at the end.
@Suite(.serialized)
struct MetricsTests {
    @Test func scriptedSession() async throws {
        let test = TestMetrics()
        var options = Options(logLevel: .error, closeTimeout: .milliseconds(500), compression: CompressionSettings(threshold: 100))
        options.configuration.metrics = WebSocketMetrics(factory: test)
        let app = App()
        app.get("/echo", try Sockets.messages(options)) { _, socket in
            for await m in socket.receiver { try await socket.send(m) }
        }
        try await withRunning(app) { port in
            let url = URL(string: "ws://127.0.0.1:\(port)/echo")!
            var clientOptions = Options(logLevel: .error, closeTimeout: .milliseconds(500))
            clientOptions.compression = CompressionSettings(threshold: 100)
            await #expect(throws: WebSocketClientError.unexpectedStatus(403, reason: "Forbidden")) {
                _ = try await WebSocketClient.connect(to: url, try Sockets.messages(clientOptions))
            }
            let socket = try await WebSocketClient.connect(to: url, try Sockets.messages(clientOptions),
                                                           options: WebSocketClientOptions(headers: ["Origin": "http://127.0.0.1:\(port)"]))
            var it = socket.receiver.makeAsyncIterator()
            let big = String(repeating: "metrics ", count: 125) // 1000 bytes, compressible
            for text in ["hello", "world", big] {
                try await socket.send(text)
                #expect(await it.next() == text)
            }
            await socket.disconnect(4001, reason: "bye")
            #expect(await socket.done.code.rawValue == 4001)
            // The server's side of the end is counted on its event loop, just after.
            for _ in 0..<100 where (try? test.expectMeter("sockets.connections.open").lastValue) != 0 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(try test.expectCounter("sockets.handshakes.accepted").totalValue == 1)
        #expect(try test.expectCounter("sockets.handshakes.refused", [("status", "403")]).totalValue == 1)
        #expect(try test.expectCounter("sockets.messages.in").totalValue == 3)
        #expect(try test.expectCounter("sockets.messages.out").totalValue == 3)
        #expect(try test.expectCounter("sockets.bytes.in").totalValue == 1010)
        #expect(try test.expectCounter("sockets.bytes.out").totalValue == 1010)
        #expect(try test.expectCounter("sockets.close.received", [("code", "4001")]).totalValue == 1)
        #expect(try test.expectCounter("sockets.close.sent", [("code", "4001")]).totalValue == 1)
        #expect(try test.expectCounter("sockets.deflate.bytes.before").totalValue == 1000)
        let after = try test.expectCounter("sockets.deflate.bytes.after").totalValue
        #expect(after > 0 && after < 200, "1000 repetitive bytes deflate to \(after)")
        #expect(try test.expectCounter("sockets.messages.dropped").totalValue == 0)
        #expect(try test.expectCounter("sockets.pings.unanswered").totalValue == 0)
        let open = try test.expectMeter("sockets.connections.open")
        #expect(open.values.max() == 1)
        #expect(open.lastValue == 0)
    }
}
