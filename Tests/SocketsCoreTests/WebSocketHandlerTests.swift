import NIOCore
import NIOEmbedded
import SocketsCore
import Testing

/// The NIO handler driven through an EmbeddedChannel: no sockets, virtual time.
@Suite struct WebSocketHandlerTests {
    static let key: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]

    func makeChannel(_ options: WebSocketConfiguration = WebSocketConfiguration()) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(WebSocketHandler(configuration: options))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    /// A client frame: masked with `key`.
    func clientFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger((fin ? 0x80 : 0) | opcode)
        if payload.count < 126 {
            b.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            b.writeInteger(UInt8(0x80 | 126))
            b.writeInteger(UInt16(payload.count))
        } else {
            b.writeInteger(UInt8(0x80 | 127))
            b.writeInteger(UInt64(payload.count))
        }
        b.writeBytes(Self.key)
        b.writeBytes(payload.enumerated().map { $0.element ^ Self.key[$0.offset & 3] })
        return b
    }

    /// Everything written outbound so far, concatenated.
    func outboundBytes(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var all: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { all += b.readableBytesView }
        return all
    }

    @Test func textMessageIsPassedUpAsASliceOfTheReadBuffer() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        let frame = clientFrame(0x1, Array("Hello".utf8))
        let base = frame.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        try channel.writeInbound(frame)
        let inbound = try #require(try channel.readInbound(as: WebSocketInbound.self))
        guard case .text(let payload) = inbound else { Issue.record("expected text, got \(inbound)"); return }
        #expect(String(buffer: payload) == "Hello")
        // Zero copy: the message's bytes are where the frame's payload was (header is 6 bytes).
        let where_ = payload.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(where_ == base + 6)
        _ = try? channel.finish()
    }

    @Test func manyMessagesInOneReadAllArriveInOrder() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        var bytes = ByteBuffer()
        for i in 0..<50 {
            var f = clientFrame(i % 2 == 0 ? 0x1 : 0x2, Array("m\(i)".utf8))
            bytes.writeBuffer(&f)
        }
        // Split the stream in the middle of a frame: the engine carries the rest over.
        let cut = bytes.readableBytes / 2 + 3
        try channel.writeInbound(bytes.getSlice(at: 0, length: cut)!)
        try channel.writeInbound(bytes.getSlice(at: cut, length: bytes.readableBytes - cut)!)
        for i in 0..<50 {
            let m = try #require(try channel.readInbound(as: WebSocketInbound.self))
            switch m {
            case .text(let b): #expect(i % 2 == 0 && String(buffer: b) == "m\(i)")
            case .binary(let b): #expect(i % 2 == 1 && String(buffer: b) == "m\(i)")
            default: Issue.record("unexpected \(m)")
            }
        }
        _ = try? channel.finish()
    }

    @Test func pingIsAnsweredWithPongOnTheEventLoop() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        try channel.writeInbound(clientFrame(0x9, [1, 2, 3]))
        #expect(try outboundBytes(channel) == [0x8A, 0x03, 1, 2, 3])
        #expect(try channel.readInbound(as: WebSocketInbound.self) == nil) // pings are not passed up
        _ = try? channel.finish()
    }

    @Test func peerCloseIsEchoedAndTheChannelCloses() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        try channel.writeInbound(clientFrame(0x8, [0x0F, 0xA0] + Array("bye".utf8))) // 4000
        #expect(try channel.readInbound(as: WebSocketInbound.self) == .closed(4000, reason: "bye"))
        #expect(try outboundBytes(channel) == [0x88, 0x02, 0x0F, 0xA0])
        #expect(!channel.isActive)
    }

    @Test func emptyCloseIsAnsweredWithAnEmptyClose() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        try channel.writeInbound(clientFrame(0x8, []))
        #expect(try channel.readInbound(as: WebSocketInbound.self) == .closed(.noStatusReceived, reason: ""))
        #expect(try outboundBytes(channel) == [0x88, 0x00]) // 1005 is never sent
    }

    @Test(arguments: [
        (ByteBuffer(bytes: [0x81, 0x02, 0x68, 0x69]), UInt16(1002)), // unmasked client frame
        (ByteBuffer(bytes: [0x83, 0x80, 1, 2, 3, 4]), UInt16(1002)), // reserved opcode
    ])
    func protocolErrorsSendTheirCloseCode(frame: ByteBuffer, code: UInt16) throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        try channel.writeInbound(frame)
        let m = try #require(try channel.readInbound(as: WebSocketInbound.self))
        guard case .failed(let error) = m else { Issue.record("expected failure, got \(m)"); return }
        #expect(error.code.rawValue == code)
        let out = try outboundBytes(channel)
        #expect(out.count >= 4 && out[0] == 0x88 && UInt16(out[2]) << 8 | UInt16(out[3]) == code)
        #expect(!channel.isActive)
    }

    @Test func invalidUTF8Sends1007AndTooBigSends1009() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        try channel.writeInbound(clientFrame(0x1, [0x61, 0xC0, 0xAF]))
        guard case .failed(let e) = try #require(try channel.readInbound(as: WebSocketInbound.self)) else { Issue.record("no failure"); return }
        #expect(e.code == .invalidPayload)

        let small = try makeChannel(WebSocketConfiguration(maxMessageSize: 100))

        defer { _ = try? small.finish() }
        // Only the header of a 200-byte frame: refused before the payload arrives.
        var f = clientFrame(0x2, [UInt8](repeating: 7, count: 200))
        try small.writeInbound(f.readSlice(length: 8)!)
        guard case .failed(let e2) = try #require(try small.readInbound(as: WebSocketInbound.self)) else { Issue.record("no failure"); return }
        #expect(e2.code == .messageTooBig)
        let out = try outboundBytes(small)
        #expect(Array(out.prefix(4)) == [0x88, out[1], 0x03, 0xF1]) // 1009
    }

    @Test func smallFramesAreCorkedIntoOneBufferAndLargePayloadsGoBesideTheirHeader() throws {
        let channel = try makeChannel(WebSocketConfiguration(maxMessageSize: 1 << 20))
        defer { _ = try? channel.finish() }
        // Two small messages and a ping written before one flush: one buffer, frames in order.
        channel.write(WebSocketOutbound.text(ByteBuffer(string: "hi")), promise: nil)
        channel.write(WebSocketOutbound.binary(ByteBuffer(bytes: [1, 2])), promise: nil)
        channel.write(WebSocketOutbound.ping(ByteBuffer()), promise: nil)
        channel.flush()
        let corked = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(corked.readableBytesView) == [0x81, 0x02, 0x68, 0x69, 0x82, 0x02, 1, 2, 0x89, 0x00])
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        // A payload over 16 KiB goes out as it is, after its header: not copied.
        let big = ByteBuffer(repeating: 0x41, count: 70000)
        try channel.writeOutbound(WebSocketOutbound.binary(big))
        #expect(Array(try #require(try channel.readOutbound(as: ByteBuffer.self)).readableBytesView) == [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70])
        let payload = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(payload.readableBytes == 70000)
        let same = payload.withUnsafeReadableBytes { p in big.withUnsafeReadableBytes { $0.baseAddress == p.baseAddress } }
        #expect(same, "the large payload must be the caller's buffer, not a copy")
        _ = try? channel.finish()
    }

    @Test func outgoingMessageOverTheLimitIsRefused() throws {
        let channel = try makeChannel(WebSocketConfiguration(maxMessageSize: 10))
        defer { _ = try? channel.finish() }
        let result = channel.writeAndFlush(WebSocketOutbound.text(ByteBuffer(string: String(repeating: "x", count: 11))))
        #expect(throws: WebSocketError.outgoingMessageTooBig) { try result.wait() }
        _ = try? channel.finish()
    }

    @Test func pingsGoOutEveryPingPeriod() throws {
        let channel = try makeChannel(WebSocketConfiguration(pongWait: .seconds(10), pingPeriod: .seconds(2)))
        defer { _ = try? channel.finish() }
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(try outboundBytes(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(try outboundBytes(channel) == [0x89, 0x00])
        try channel.writeInbound(clientFrame(0xA, []))
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try outboundBytes(channel) == [0x89, 0x00])
        _ = try? channel.finish()
    }

    @Test func silentPeerTimesOutAfterPongWaitButSendingDoesNotCount() throws {
        let channel = try makeChannel(WebSocketConfiguration(pongWait: .seconds(5), pingPeriod: .seconds(2)))
        defer { _ = try? channel.finish() }
        // The peer talks at t=3, so the deadline moves to t=8.
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        try channel.writeInbound(clientFrame(0xA, []))
        // A real channel with autoRead asks for the next read after each read; EmbeddedChannel
        // does not, so do it here (without it the handler holds the clock, as under backpressure).
        channel.pipeline.read()
        // Our own sends at t=4..7 do not keep the connection alive.
        for _ in 0..<4 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(1))
            try channel.writeOutbound(WebSocketOutbound.text(ByteBuffer(string: "x")))
        }
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1)) // t = 8
        let m = try #require(try channel.readInbound(as: WebSocketInbound.self))
        #expect(m == .failed(.pongTimeout))
        #expect(!channel.isActive)
    }

    @Test func ourCloseWaitsForThePeerThenTimesOut() throws {
        let channel = try makeChannel(WebSocketConfiguration(closeTimeout: .seconds(3)))
        defer { _ = try? channel.finish() }
        try channel.writeOutbound(WebSocketOutbound.close(4001, reason: "done"))
        #expect(try outboundBytes(channel) == [0x88, 0x06, 0x0F, 0xA1] + Array("done".utf8))
        // Nothing more can be sent.
        let late = channel.writeAndFlush(WebSocketOutbound.text(ByteBuffer(string: "late")))
        #expect(throws: WebSocketError.closed) { try late.wait() }
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)

        let answered = try makeChannel(WebSocketConfiguration(closeTimeout: .seconds(3)))

        defer { _ = try? answered.finish() }
        try answered.writeOutbound(WebSocketOutbound.close(.normalClosure, reason: ""))
        try answered.writeInbound(clientFrame(0x8, [0x03, 0xE8]))
        #expect(try answered.readInbound(as: WebSocketInbound.self) == .closed(.normalClosure, reason: ""))
        #expect(!answered.isActive)
    }

    @Test func clockIsHeldWhileTheApplicationIsNotReading() throws {
        let channel = try makeChannel(WebSocketConfiguration(pongWait: .seconds(5), pingPeriod: .seconds(2)))
        defer { _ = try? channel.finish() }
        try channel.writeInbound(clientFrame(0x1, Array("unread".utf8)))
        // No read() follows: the application is applying backpressure, so the socket is not read
        // and the peer cannot be blamed for silence.
        channel.embeddedEventLoop.advanceTime(by: .seconds(20))
        #expect(channel.isActive)
        channel.pipeline.read()
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        #expect(!channel.isActive)
    }

    @Test func droppedConnectionIsReportedAs1006() throws {
        let channel = try makeChannel()
        defer { _ = try? channel.finish() }
        try channel.close().wait()
        #expect(try channel.readInbound(as: WebSocketInbound.self) == .failed(WebSocketError(code: .abnormalClosure, reason: "connection lost without a close frame")))
    }
}

extension WebSocketHandlerTests {
    /// `.seconds(.max)` meant as "never" used to overflow in the conversion to NIO's TimeAmount
    /// and stop the process; it now saturates and the connection works.
    @Test func durationsMeantAsNeverDoNotCrash() throws {
        let never = Duration.seconds(Int64.max)
        let channel = try makeChannel(WebSocketConfiguration(writeWait: never, pongWait: never, pingPeriod: .seconds(Int64.max / 2), closeTimeout: never))
        defer { _ = try? channel.finish() }
        try channel.writeInbound(clientFrame(0x1, Array("still here".utf8)))
        guard case .text(let b) = try #require(try channel.readInbound(as: WebSocketInbound.self)) else { Issue.record("no text"); return }
        #expect(String(buffer: b) == "still here")
        channel.embeddedEventLoop.advanceTime(by: .hours(24 * 365))
        #expect(channel.isActive)
    }

    /// The handler's closeResult reports the outcome the state machine recorded.
    @Test func closeResultCarriesThePeersCodeAndReason() throws {
        let channel = try makeChannel()
        let handler = try channel.pipeline.syncOperations.handler(type: WebSocketHandler.self)
        let result = handler.closeResult
        try channel.writeInbound(clientFrame(0x8, [0x0F, 0xA0] + Array("bye".utf8)))
        _ = try? channel.finish()
        #expect(try result.wait() == CloseResult(code: 4000, reason: "bye"))
    }
}
