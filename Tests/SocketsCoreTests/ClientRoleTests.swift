import NIOCore
import NIOEmbedded
@testable import SocketsCore
import Testing

/// The handler in the client role, through an EmbeddedChannel: every frame it sends is masked
/// with its own key, payloads unmask to what was sent (small ones masked in the output buffer,
/// large ones in a copy), the caller's buffer is never changed, and masked frames from a server
/// are refused with 1002.
@Suite struct ClientRoleTests {
    func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        var configuration = WebSocketConfiguration(skipLogging: true)
        configuration.maxMessageSize = 1 << 20
        try channel.pipeline.syncOperations.addHandler(WebSocketHandler(configuration: configuration, compression: nil, role: .client))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    struct Frame {
        var opcode: UInt8
        var masked: Bool
        var key: [UInt8]
        var payload: [UInt8]
    }

    /// Splits the bytes written into frames and unmasks their payloads.
    func frames(_ channel: EmbeddedChannel) throws -> [Frame] {
        var all: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { all += b.readableBytesView }
        var out: [Frame] = []
        var i = 0
        while i < all.count {
            let opcode = all[i] & 0x0f
            let masked = all[i + 1] & 0x80 != 0
            var length = Int(all[i + 1] & 0x7f)
            i += 2
            if length == 126 { length = Int(all[i]) << 8 | Int(all[i + 1]); i += 2 } else if length == 127 {
                length = all[i..<i + 8].reduce(0) { $0 << 8 | Int($1) }
                i += 8
            }
            let key = masked ? Array(all[i..<i + 4]) : []
            if masked { i += 4 }
            let payload = all[i..<i + length].enumerated().map { masked ? $0.element ^ key[$0.offset & 3] : $0.element }
            i += length
            out.append(Frame(opcode: opcode, masked: masked, key: key, payload: payload))
        }
        return out
    }

    @Test func everyFrameIsMaskedWithItsOwnKey() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        let small = Array("hello".utf8)
        let big = (0..<40_000).map { UInt8($0 % 253) }
        let bigBuffer = ByteBuffer(bytes: big)
        for _ in 0..<8 { try channel.writeOutbound(WebSocketOutbound.text(ByteBuffer(bytes: small))) }
        try channel.writeOutbound(WebSocketOutbound.binary(bigBuffer))
        try channel.writeOutbound(WebSocketOutbound.ping(ByteBuffer(string: "p")))
        try channel.writeOutbound(WebSocketOutbound.close(.normalClosure, reason: "bye"))
        let sent = try frames(channel)
        #expect(sent.count == 11)
        let allMasked = sent.allSatisfy { $0.masked }
        let smallOK = sent[0..<8].allSatisfy { $0.opcode == 1 && $0.payload == small }
        #expect(allMasked, "a client frame went out unmasked")
        #expect(smallOK)
        #expect(sent[8].opcode == 2 && sent[8].payload == big, "the large payload unmasks to what was sent")
        #expect(sent[9].opcode == 9 && sent[9].payload == Array("p".utf8))
        #expect(sent[10].opcode == 8 && sent[10].payload == [0x03, 0xe8] + Array("bye".utf8))
        #expect(Set(sent.map(\.key)).count == sent.count, "a masking key was reused")
        #expect(Array(bigBuffer.readableBytesView) == big, "the caller's buffer was masked in place")
    }

    @Test func unmaskedServerFramesArriveAndMaskedOnesFail() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        try channel.writeInbound(ByteBuffer(bytes: [0x81, 0x02, 0x68, 0x69]))
        #expect(try channel.readInbound(as: WebSocketInbound.self) == .text(ByteBuffer(string: "hi")))
        // A masked frame from a server: 1002 (RFC 6455 §5.1).
        try channel.writeInbound(ByteBuffer(bytes: [0x81, 0x82, 1, 2, 3, 4, 0x69, 0x6b]))
        let report = try channel.readInbound(as: WebSocketInbound.self)
        guard case .failed(let error)? = report else { Issue.record("expected a failure, got \(String(describing: report))"); return }
        #expect(error.code == .protocolError)
        let sent = try frames(channel)
        #expect(sent.last?.opcode == 8 && sent.last?.masked == true)
        #expect(sent.last.map { Array($0.payload.prefix(2)) } == [0x03, 0xea])
    }
}
