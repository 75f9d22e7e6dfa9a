import Foundation
import Sockets
import Testing

/// examples/nio-server (the `NIOServerExample` executable, built with the tests): a plain SwiftNIO
/// server with the channel layer, through NIO's classic upgrade and through its typed, async
/// upgrade. Tests/Interop/newcomer.py starts it, talks to it and reports; the assertions are here.
@Suite(.serialized)
struct NIOExampleTests {
    @Test(arguments: [false, true])
    func exampleServer(typed: Bool) async throws {
        let r = try await InteropClient.run("example", try Self.binary(), typed ? ["--typed"] : [], timeout: 90,
                                            script: InteropClient.newcomerScript)
        #expect(r["listening"].string?.contains(typed ? "typed upgrade" : "classic upgrade") == true, "\(r)")
        // The JSON route through the channel layer: decoded, changed, encoded back.
        let reply = r["chat"]["received"].array.first?.string
        let decoded = reply.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        #expect(decoded == ["user": "ann", "text": "HELLO"], "\(r["chat"])")
        #expect(r["chat"]["close"]["rcvd_code"].int == 1000)
        // A refused handshake is answered with its status and reason (not a 404, not silence).
        #expect(r["refused"]["status"].int == 403, "\(r["refused"])")
        #expect(r["refused"]["body"].string == "origin not allowed\n")
        #expect(r["bad_version"]["status"].int == 426, "\(r["bad_version"])")
        #expect(r["bad_version"]["headers"]["sec-websocket-version"].array.map(\.string) == ["13"])
        #expect(r["post"]["status"].int == 405, "\(r["post"])")
        #expect(r["post"]["headers"]["allow"].array.map(\.string) == ["GET"])
        // Plain HTTP is the server's own.
        #expect(r["root"]["status"].int == 200)
        #expect(r["root"]["body"].string == "hello from NIO\n")
        #expect(r["missing"]["status"].int == 404)
        // An upgrade request for a path without a route reaches the HTTP handlers whole (typed:
        // the head NIO keeps is given back) and gets their 404.
        #expect(r["upgrade_missing"]["status"].int == 404, "\(r["upgrade_missing"])")
        // The first WebSocket connection did not take the server down (the classic pitfall: the
        // HTTP handler left in the pipeline stops the process at the first frame).
        #expect(r["chat_again"]["received"].array.count == 1, "\(r["chat_again"])")
    }

    /// The example executable, next to the test binary. $NIO_EXAMPLE_BIN overrides.
    static func binary() throws -> String {
        if let bin = ProcessInfo.processInfo.environment["NIO_EXAMPLE_BIN"], !bin.isEmpty { return bin }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var candidates = [me.deletingLastPathComponent().appendingPathComponent("NIOServerExample").path]
        if let exe = Bundle.main.executableURL {
            candidates.append(exe.deletingLastPathComponent().appendingPathComponent("NIOServerExample").path)
        }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("NIOServerExample").path)
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        throw InteropClientError(description: "NIOServerExample was not found next to the test binary (\(candidates)); build it with `swift build --build-tests`")
    }
}
