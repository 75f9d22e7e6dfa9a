import NIOCore
import NIOEmbedded
@testable import SocketsCore
import Testing

/// Issue #11 item 15: an application that stops taking messages (the channel layer's full inbox,
/// a push-only handler) no longer stops the socket from being read at once. What follows is held
/// by the handler, up to one maxMessageSize, so the peer's pings are answered, its close is seen
/// and a silent peer is timed out by pongWait; the socket is not read once that is full; the
/// held messages reach the application in order, before the close that followed them.
/// EmbeddedChannel, virtual time.
@Suite struct HeldMessagesTests {
    /// An application that pauses reading once `capacity` messages wait untaken, like the
    /// channel layer's inbox; `take` plays its reader.
    final class PausingApplication: WebSocketApplication {
        let capacity: Int
        var connection: WebSocketConnection?
        var untaken: [String] = []
        var events: [String] = []

        init(capacity: Int) { self.capacity = capacity }

        func open(_ connection: WebSocketConnection) { self.connection = connection }
        func message(_ connection: WebSocketConnection, _ message: WebSocketMessage) {
            let text: String = switch message {
            case .text(let b): String(buffer: b)
            case .binary(let b): "binary \(b.readableBytes)"
            }
            untaken.append(text)
            events.append(text)
            if untaken.count >= capacity { connection.pauseReading() }
        }
        func ending(_ connection: WebSocketConnection, _ report: WebSocketInbound) {
            switch report {
            case .closed(let code, _): events.append("closed \(code.rawValue)")
            case .failed(let error): events.append("failed \(error.code.rawValue)")
            default: break
            }
        }
        func drain(_ connection: WebSocketConnection) {}
        var holdsUnansweredMessages: Bool { !untaken.isEmpty }
        func closed(_ connection: WebSocketConnection, _ result: CloseResult) { events.append("done \(result.code.rawValue)") }

        /// The reader takes everything waiting and has room again.
        func takeAll(_ channel: EmbeddedChannel) {
            untaken.removeAll()
            connection?.sender.resumeReading()
            channel.embeddedEventLoop.run()
            if untaken.isEmpty { connection?.sender.caughtUp() }
            channel.embeddedEventLoop.run()
        }
    }

    /// Counts the reads the handler asks the socket for.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    struct Setup {
        let channel: EmbeddedChannel
        let application: PausingApplication
        let reads: ReadCounter
    }

    func makeChannel(capacity: Int = 2, maxMessageSize: Int = 1000) throws -> Setup {
        let channel = EmbeddedChannel()
        let configuration = WebSocketConfiguration(skipLogging: true, pongWait: .seconds(5), pingPeriod: .seconds(2),
                                                   maxMessageSize: maxMessageSize, closeTimeout: .seconds(3))
        let reads = ReadCounter()
        let handler = try WebSocketHandler(configuration: configuration)
        let application = PausingApplication(capacity: capacity)
        try channel.pipeline.syncOperations.addHandler(reads)
        try channel.pipeline.syncOperations.addHandler(handler)
        handler.attach(application, queueCapacity: 16)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return Setup(channel: channel, application: application, reads: reads)
    }

    func frame(_ opcode: UInt8, _ payload: [UInt8]) -> ByteBuffer {
        WebSocketHandlerTests().clientFrame(opcode, payload)
    }

    func text(_ s: String) -> ByteBuffer { frame(0x1, Array(s.utf8)) }

    /// The frames written, as (opcode, payload).
    func sent(_ channel: EmbeddedChannel) throws -> [(UInt8, [UInt8])] {
        let all = try WebSocketHandlerTests().outboundBytes(channel)
        var out: [(UInt8, [UInt8])] = []
        var i = 0
        while i + 1 < all.count {
            let opcode = all[i] & 0x0f
            var length = Int(all[i + 1] & 0x7f)
            i += 2
            if length == 126 { length = Int(all[i]) << 8 | Int(all[i + 1]); i += 2 }
            out.append((opcode, Array(all[i..<i + length])))
            i += length
        }
        return out
    }

    /// A full application: the socket is still read (the handler asks for the next read), a ping
    /// after the held messages is answered at once, and the close that follows them waits: the
    /// application gets the held messages in order when it has room, then the close, and only
    /// then is the close answered (1000) and the channel closed.
    @Test func pingAnsweredAndCloseSeenWhileTheApplicationIsFull() throws {
        let s = try makeChannel()
        defer { _ = try? s.channel.finish() }
        try s.channel.writeInbound(text("m0"))
        try s.channel.writeInbound(text("m1")) // the application is full now
        let readsBefore = s.reads.reads
        s.channel.pipeline.read()
        #expect(s.reads.reads == readsBefore + 1, "the socket must still be read while little is held")
        try s.channel.writeInbound(text("m2"))
        try s.channel.writeInbound(text("m3"))
        try s.channel.writeInbound(frame(0x9, Array("p".utf8)))
        #expect(try sent(s.channel).map(\.0) == [0xA], "the ping must be answered while the application is full")
        try s.channel.writeInbound(frame(0x8, [0x03, 0xE8]))
        #expect(try sent(s.channel).isEmpty, "the close waits for the messages before it")
        #expect(s.application.events == ["m0", "m1"])
        #expect(s.channel.isActive)

        s.application.takeAll(s.channel) // takes m0, m1; gets m2, m3 and then the close
        #expect(s.application.events == ["m0", "m1", "m2", "m3", "closed 1000"])
        #expect(try sent(s.channel).isEmpty, "m2 and m3 are not answered yet")
        s.application.takeAll(s.channel)
        let out = try sent(s.channel)
        #expect(out.map(\.0) == [0x8] && out.first?.1 == [0x03, 0xE8], "\(out)")
        #expect(!s.channel.isActive)
        #expect(s.application.events.last == "done 1000")
    }

    /// A full application and a peer that then goes silent: the liveness clock runs while the
    /// socket is read, so pongWait (5 s) ends the connection with 1001 (`pongTimeout`).
    @Test func silentPeerIsTimedOutWhileTheApplicationIsFull() throws {
        let s = try makeChannel()
        defer { _ = try? s.channel.finish() }
        try s.channel.writeInbound(text("m0"))
        try s.channel.writeInbound(text("m1"))
        s.channel.pipeline.read() // autoRead asks for the next read
        s.channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(s.channel.isActive)
        s.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        let out = try sent(s.channel)
        #expect(out.last?.0 == 0x8 && out.last.map { Array($0.1.prefix(2)) } == [0x03, 0xE9], "expected close 1001: \(out)")
        // Closed at once after the close frame is written (EmbeddedChannel writes at once).
        #expect(!s.channel.isActive)
        #expect(s.application.events == ["m0", "m1", "failed 1001", "done 1001"])
    }

    /// What is held is bounded: once one maxMessageSize (1000 bytes here) is held, the handler
    /// stops asking for reads and the liveness clock is held (the peer is not at fault); when the
    /// application has room again it gets every held message in order and reading resumes.
    @Test func readingStopsOnceTheHeldMessagesReachTheLimit() throws {
        let s = try makeChannel(capacity: 1, maxMessageSize: 1000)
        defer { _ = try? s.channel.finish() }
        try s.channel.writeInbound(text("first")) // full
        let payload = String(repeating: "x", count: 400)
        try s.channel.writeInbound(text("a" + payload))
        try s.channel.writeInbound(text("b" + payload))
        var reads = s.reads.reads
        s.channel.pipeline.read()
        #expect(s.reads.reads == reads + 1, "802 bytes and two entries held: under the limit, still reading")
        try s.channel.writeInbound(text("c" + payload))
        reads = s.reads.reads
        s.channel.pipeline.read()
        #expect(s.reads.reads == reads, "over the limit: the socket must not be read")
        s.channel.embeddedEventLoop.advanceTime(by: .seconds(20))
        #expect(s.channel.isActive, "the clock is held while the socket is not read")
        #expect(s.application.events == ["first"])

        s.application.takeAll(s.channel) // capacity 1: gets "a…" and is full again
        #expect(s.application.events.map { String($0.prefix(1)) } == ["f", "a"])
        s.application.takeAll(s.channel)
        s.application.takeAll(s.channel)
        #expect(s.application.events.map { String($0.prefix(1)) } == ["f", "a", "b", "c"])
        #expect(s.reads.reads == reads + 1, "reading resumes once the held messages are under the limit")
    }
}

/// Our close and the frames other threads queued: each send that was accepted goes out before
/// the close frame, and every send after it is refused (`.closed`), none dropped in silence
/// (issue #11, graceful shutdown loses no accepted message).
@Suite struct SendsAroundOurCloseTests {
    @Test func queuedFramesGoBeforeAPipelineCloseAndLaterSendsAreRefused() throws {
        let s = try HeldMessagesTests().makeChannel()
        defer { _ = try? s.channel.finish() }
        let sender = try #require(s.application.connection?.sender)
        // Queued from "another thread": the hop to the event loop has not run yet.
        #expect(sender.send(.text(ByteBuffer(string: "queued"))) == .sent)
        // The server's shutdown writes its close through the pipeline.
        try s.channel.writeOutbound(WebSocketOutbound.close(.goingAway, reason: ""))
        #expect(sender.send(.text(ByteBuffer(string: "late"))) == .closed, "a send after our close must be refused")
        s.channel.embeddedEventLoop.run()
        let out = try HeldMessagesTests().sent(s.channel)
        #expect(out.map(\.0) == [0x1, 0x8], "\(out.map(\.0))")
        #expect(out.first?.1 == Array("queued".utf8))
        #expect(out.last.map { Array($0.1.prefix(2)) } == [0x03, 0xE9])
    }

    @Test func sendsAfterADisconnectInTheQueueAreRefused() throws {
        let s = try HeldMessagesTests().makeChannel()
        defer { _ = try? s.channel.finish() }
        let sender = try #require(s.application.connection?.sender)
        #expect(sender.send(.text(ByteBuffer(string: "before"))) == .sent)
        sender.close(.normalClosure)
        #expect(sender.send(.text(ByteBuffer(string: "after"))) == .closed, "a send after the queued close must be refused")
        s.channel.embeddedEventLoop.run()
        let out = try HeldMessagesTests().sent(s.channel)
        #expect(out.map(\.0) == [0x1, 0x8], "\(out.map(\.0))")
        #expect(out.first?.1 == Array("before".utf8))
    }

    /// The peer's close while the application still answers: what it queued before it caught up
    /// goes before the close; what it sends after is refused.
    @Test func repliesQueuedBeforeTheHeldCloseGoFirst() throws {
        let s = try HeldMessagesTests().makeChannel()
        defer { _ = try? s.channel.finish() }
        let sender = try #require(s.application.connection?.sender)
        try s.channel.writeInbound(HeldMessagesTests().text("m0"))
        try s.channel.writeInbound(HeldMessagesTests().frame(0x8, [0x03, 0xE8]))
        #expect(try HeldMessagesTests().sent(s.channel).isEmpty, "the close waits for the reply to m0")
        #expect(sender.send(.text(ByteBuffer(string: "reply"))) == .sent)
        s.application.untaken.removeAll()
        sender.caughtUp()
        s.channel.embeddedEventLoop.run()
        #expect(sender.send(.text(ByteBuffer(string: "late"))) == .closed)
        let out = try HeldMessagesTests().sent(s.channel)
        #expect(out.map(\.0) == [0x1, 0x8], "\(out.map(\.0))")
        #expect(out.first?.1 == Array("reply".utf8))
    }
}
