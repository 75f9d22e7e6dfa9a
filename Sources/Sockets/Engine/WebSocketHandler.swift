import Logging
public import NIOCore

/// The channel handler that owns the C engine for one WebSocket connection (server role).
///
/// Put it in a pipeline right after the HTTP handlers are removed (``WebSocketUpgrader`` does).
/// Inbound it takes the raw `ByteBuffer`s read from the socket and passes up ``WebSocketInbound``
/// values; outbound it takes ``WebSocketOutbound`` values and writes frames as `ByteBuffer`s.
///
/// - Inbound bytes are parsed where they lie: the engine unmasks them in place, and a message that
///   arrived whole in one read is passed up as a slice of the read buffer, with no copy. (This is
///   why the handler must be the first to see inbound bytes and must not share them: nothing
///   before it in the pipeline may keep a reference to a read buffer expecting it unchanged.)
/// - All messages parsed from one read are passed up before one `channelReadComplete`, and pongs
///   to pings are written then, in one flush, on the event loop, whatever the application is doing.
/// - Outbound, the frame header and the payload go out as two buffers in one gather write; the
///   payload is never copied into a frame buffer.
/// - Timers run on the event loop: a ping every `pingPeriod`; the connection fails when the peer
///   sends nothing for `pongWait` (our own sends do not count; while the application is not
///   reading, and so the socket is not read, the clock is held); a write pending for longer than
///   `writeWait` fails it; after our close frame the peer has `closeTimeout` to answer before TCP
///   is closed.
public final class WebSocketHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// Raw bytes from the socket.
    public typealias InboundIn = ByteBuffer
    /// Messages, the peer's close, failures.
    public typealias InboundOut = WebSocketInbound
    /// What to send.
    public typealias OutboundIn = WebSocketOutbound
    /// Frame bytes to the socket.
    public typealias OutboundOut = ByteBuffer

    private enum State { case open, closeSent, closed }

    private let engine: Engine
    private let options: Options
    private var state = State.open

    private var lastReceived = NIODeadline.uptimeNanoseconds(0)
    private var readRequested = true
    private var pingTimer: Scheduled<Void>?
    private var livenessTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?
    private var writeTimer: Scheduled<Void>?
    private var writeDeadlines: [NIODeadline] = []
    private var writeHead = 0
    private var needsFlush = false
    private var steps: [(Engine.Step, Int)] = []

    /// Creates the handler for one connection.
    ///
    /// - Parameter options: limits and timers; see ``Options``.
    /// - Throws: ``OptionsError`` when the options are inconsistent.
    public convenience init(options: Options) throws {
        try self.init(options: options, compression: nil)
    }

    /// With permessage-deflate agreed in the handshake (see ``WebSocketUpgrader``).
    init(options: Options, compression: CompressionAgreement?) throws {
        try options.validate()
        self.options = options
        self.compression = compression
        self.engine = try Engine(role: .server, maxMessageSize: options.maxMessageSize, maxFrameSize: options.effectiveMaxFrameSize,
                                 compression: compression)
    }

    private let compression: CompressionAgreement?
    private var deflater: Deflater?

    // MARK: Lifecycle

    /// Starts the timers when the handler joins an active channel (the usual case after an upgrade).
    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimers(context: context) }
    }

    /// Cancels the timers.
    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
    }

    /// Starts the timers when the channel becomes active.
    public func channelActive(context: ChannelHandlerContext) {
        startTimers(context: context)
        context.fireChannelActive()
    }

    /// Reports a connection that ended without a close handshake as a failure (1006).
    public func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        if state == .open {
            state = .closed
            context.fireChannelRead(wrapInboundOut(.failed(WebSocketError(code: .abnormalClosure, reason: "connection lost without a close frame"))))
        }
        state = .closed
        context.fireChannelInactive()
    }

    /// Reports a socket error as a failure and closes the channel.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if state != .closed {
            state = .closed
            options.log(.warning, "socket error: \(error)")
            context.fireChannelRead(wrapInboundOut(.failed(WebSocketError(code: .abnormalClosure, reason: "\(error)"))))
        }
        context.close(promise: nil)
    }

    // MARK: Inbound

    /// Parses the bytes, passing up every message in them.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lastReceived = context.eventLoop.now
        readRequested = false
        let base = buffer.readerIndex
        let allocator = context.channel.allocator
        steps.removeAll(keepingCapacity: true)
        // Unmask in place: see the type's documentation for why writing through the read-only view
        // is sound here (we are the read buffer's only consumer; the receive-buffer pool only
        // recycles storage that nobody else references).
        buffer.withUnsafeReadableBytes { raw in
            guard raw.count > 0 else { return }
            let all = UnsafeMutableRawBufferPointer(mutating: raw)
            var offset = 0
            parsing: while true {
                let (step, used) = engine.parse(UnsafeMutableRawBufferPointer(rebasing: all[offset...]), allocator: allocator)
                switch step {
                case .needMore, .closed:
                    break parsing
                case .failure:
                    steps.append((step, offset))
                    break parsing
                default:
                    steps.append((step, offset))
                    offset += used
                }
            }
        }
        for (step, start) in steps {
            switch step {
            case .messageInPlace(let text, let offset, let length):
                let slice = buffer.getSlice(at: base + start + offset, length: length)!
                context.fireChannelRead(wrapInboundOut(text ? .text(slice) : .binary(slice)))
            case .message(let text, let payload):
                context.fireChannelRead(wrapInboundOut(text ? .text(payload) : .binary(payload)))
            case .ping(let payload):
                if state == .open {
                    writeFrame(context: context, opcode: Engine.opPong, payload: payload, promise: nil)
                    needsFlush = true
                }
            case .pong:
                break
            case .close(let code, let reason):
                peerClosed(context: context, code: CloseCode(rawValue: code), reason: reason)
            case .failure(let code, let reason):
                fail(context: context, WebSocketError(code: CloseCode(rawValue: code), reason: reason))
            case .needMore, .closed:
                break
            }
        }
        steps.removeAll(keepingCapacity: true)
    }

    /// Flushes the pongs written while reading, then passes the event on.
    public func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Notes that the application asked for more data (used to hold the liveness clock while it
    /// does not).
    public func read(context: ChannelHandlerContext) {
        readRequested = true
        context.read()
    }

    private func peerClosed(context: ChannelHandlerContext, code: CloseCode, reason: String) {
        options.log(.info, "peer closed the connection: \(code.rawValue) \(reason)")
        context.fireChannelRead(wrapInboundOut(.closed(code, reason: reason)))
        switch state {
        case .open:
            // RFC 6455 §5.5.1: answer with a close frame, echoing the code; then, as the server,
            // close TCP first (§7.1.1).
            state = .closed
            var frame = context.channel.allocator.buffer(capacity: Int(8 + reason.utf8.count))
            Engine.writeClose(into: &frame, code: code.isSendable ? code.rawValue : nil, reason: "")
            context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        case .closeSent:
            state = .closed
            context.close(promise: nil)
        case .closed:
            break
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: WebSocketError) {
        guard state != .closed else { return }
        options.log(.warning, "closing connection: \(error)")
        let wasOpen = state == .open
        state = .closed
        context.fireChannelRead(wrapInboundOut(.failed(error)))
        if wasOpen {
            var frame = context.channel.allocator.buffer(capacity: Int(8 + error.reason.utf8.count))
            Engine.writeClose(into: &frame, code: error.code.rawValue, reason: error.reason)
            context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: Outbound

    /// Frames and writes a message, a ping or our close frame.
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .text(let payload):
            writeMessage(context: context, opcode: Engine.opText, payload: payload, promise: promise)
        case .binary(let payload):
            writeMessage(context: context, opcode: Engine.opBinary, payload: payload, promise: promise)
        case .uncompressed(let message):
            switch message {
            case .text(let payload): writeMessage(context: context, opcode: Engine.opText, payload: payload, compress: false, promise: promise)
            case .binary(let payload): writeMessage(context: context, opcode: Engine.opBinary, payload: payload, compress: false, promise: promise)
            }
        case .ping(let payload):
            guard state == .open else { promise?.fail(WebSocketError.closed); return }
            guard payload.readableBytes <= 125 else {
                promise?.fail(WebSocketError(code: .protocolError, reason: "ping payload longer than 125 bytes"))
                return
            }
            writeFrame(context: context, opcode: Engine.opPing, payload: payload, promise: promise)
        case .close(let code, let reason):
            guard state == .open else { promise?.succeed(()); return }
            state = .closeSent
            options.log(.info, "closing connection: \(code.rawValue) \(reason)")
            var frame = context.channel.allocator.buffer(capacity: Int(8 + reason.utf8.count))
            Engine.writeClose(into: &frame, code: code.rawValue, reason: reason)
            context.write(wrapOutboundOut(frame), promise: trackWrite(context: context, promise: promise) ?? promise)
            let timeout = TimeAmount(options.closeTimeout)
            closeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                self.options.log(.info, "peer did not answer our close frame within closeTimeout")
                context.close(promise: nil)
            }
        }
    }

    private func writeMessage(context: ChannelHandlerContext, opcode: UInt8, payload: ByteBuffer, compress: Bool = true,
                              promise: EventLoopPromise<Void>?) {
        guard state == .open else {
            promise?.fail(WebSocketError.closed)
            return
        }
        guard payload.readableBytes <= options.maxMessageSize else {
            promise?.fail(WebSocketError.outgoingMessageTooBig)
            return
        }
        // A message marked uncompressed, or under the threshold, never reaches the deflater (so
        // never its window, and never creates it); created on the first message worth compressing.
        if compress, let compression, let settings = options.compression, payload.readableBytes >= settings.threshold {
            if deflater == nil {
                deflater = settings.memory == .shared ? Deflater.shared(settings: settings) : Deflater(settings: settings, agreement: compression)
            }
            if let deflater, let (out, compressed) = deflater.compress(payload, allocator: context.channel.allocator) {
                writeFrame(context: context, opcode: opcode, payload: out, rsv: compressed ? 0x40 : 0, promise: promise)
                return
            }
        }
        writeFrame(context: context, opcode: opcode, payload: payload, promise: promise)
    }

    /// Header and payload as two buffers: NIO sends them with one vectored write on flush.
    private func writeFrame(context: ChannelHandlerContext, opcode: UInt8, payload: ByteBuffer, rsv: UInt8 = 0,
                            promise: EventLoopPromise<Void>?) {
        var header = context.channel.allocator.buffer(capacity: 10)
        Engine.writeHeader(into: &header, opcode: opcode, length: payload.readableBytes, rsv: rsv)
        context.write(wrapOutboundOut(header), promise: nil)
        let tracked = trackWrite(context: context, promise: promise)
        context.write(wrapOutboundOut(payload), promise: tracked ?? promise)
    }

    // MARK: Timers

    private func startTimers(context: ChannelHandlerContext) {
        guard pingTimer == nil, state == .open else { return }
        lastReceived = context.eventLoop.now
        schedulePing(context: context)
        scheduleLiveness(context: context, at: lastReceived + TimeAmount(options.pongWait))
    }

    private func cancelTimers() {
        pingTimer?.cancel()
        livenessTimer?.cancel()
        closeTimer?.cancel()
        writeTimer?.cancel()
        pingTimer = nil
        livenessTimer = nil
        closeTimer = nil
        writeTimer = nil
    }

    private func schedulePing(context: ChannelHandlerContext) {
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(options.pingPeriod)) {
            guard self.state == .open else { return }
            self.writeFrame(context: context, opcode: Engine.opPing, payload: ByteBuffer(), promise: nil)
            context.flush()
            self.schedulePing(context: context)
        }
    }

    private func scheduleLiveness(context: ChannelHandlerContext, at deadline: NIODeadline) {
        livenessTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            guard self.state == .open else { return }
            let pongWait = TimeAmount(self.options.pongWait)
            let due = self.lastReceived + pongWait
            if context.eventLoop.now < due {
                self.scheduleLiveness(context: context, at: due)
            } else if !self.readRequested {
                // The application is not reading, so neither are we: the peer is not at fault.
                self.scheduleLiveness(context: context, at: context.eventLoop.now + pongWait)
            } else {
                self.fail(context: context, .pongTimeout)
            }
        }
    }

    /// With `writeWait` set, wraps the write's promise so a write still pending after `writeWait`
    /// fails the connection. Writes complete in order, so one timer on the oldest suffices.
    private func trackWrite(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) -> EventLoopPromise<Void>? {
        guard options.writeWait > .zero else { return nil }
        let tracked = context.eventLoop.makePromise(of: Void.self)
        writeDeadlines.append(context.eventLoop.now + TimeAmount(options.writeWait))
        tracked.futureResult.assumeIsolated().whenComplete { result in
            self.writeHead += 1
            if self.writeHead == self.writeDeadlines.count {
                self.writeDeadlines.removeAll(keepingCapacity: true)
                self.writeHead = 0
                self.writeTimer?.cancel()
                self.writeTimer = nil
            }
            promise?.completeWith(result)
        }
        if writeTimer == nil { scheduleWriteCheck(context: context) }
        return tracked
    }

    private func scheduleWriteCheck(context: ChannelHandlerContext) {
        guard writeHead < writeDeadlines.count else { return }
        writeTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: writeDeadlines[writeHead]) {
            self.writeTimer = nil
            guard self.writeHead < self.writeDeadlines.count else { return }
            if context.eventLoop.now >= self.writeDeadlines[self.writeHead] {
                self.options.log(.warning, "closing connection: \(WebSocketError.writeTimeout)")
                if self.state != .closed {
                    self.state = .closed
                    context.fireChannelRead(self.wrapInboundOut(.failed(.writeTimeout)))
                }
                // The socket cannot take our bytes, so a close frame would not get through either.
                context.close(promise: nil)
            } else {
                self.scheduleWriteCheck(context: context)
            }
        }
    }
}

@available(*, unavailable)
extension WebSocketHandler: Sendable {}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
