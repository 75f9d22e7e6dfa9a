import Logging
public import NIOCore

/// The channel handler that owns the C engine for one WebSocket connection (server role).
///
/// Put it in a pipeline right after the HTTP handlers are removed (``WebSocketUpgrader`` does).
/// Its close and liveness decisions are made by one ``ConnectionStateMachine`` value; the handler
/// executes them and owns the timers.
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

    private let engine: Engine
    private let configuration: WebSocketConfiguration
    private var machine: ConnectionStateMachine

    private var pingTimer: Scheduled<Void>?
    private var livenessTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?
    private var writeTimer: Scheduled<Void>?
    private var writeDeadlines: [NIODeadline] = []
    private var writeHead = 0
    private var needsFlush = false
    private var steps: [(Engine.Step, Int)] = []
    private let writeWait: TimeAmount

    /// Creates the handler for one connection.
    ///
    /// - Parameter configuration: limits, timers, compression, logging.
    /// - Throws: ``OptionsError`` when the configuration is inconsistent.
    public convenience init(configuration: WebSocketConfiguration) throws {
        try self.init(configuration: configuration, compression: nil)
    }

    /// With permessage-deflate agreed in the handshake (see ``WebSocketUpgrader``).
    package init(configuration: WebSocketConfiguration, compression: CompressionAgreement?) throws {
        try configuration.validate()
        self.configuration = configuration
        self.compression = compression
        self.engine = try Engine(maxMessageSize: configuration.maxMessageSize, maxFrameSize: configuration.effectiveMaxFrameSize,
                                 compression: compression)
        self.machine = ConnectionStateMachine(
            timers: .init(pingPeriod: TimeAmount(saturating: configuration.pingPeriod), pongWait: TimeAmount(saturating: configuration.pongWait),
                          closeTimeout: TimeAmount(saturating: configuration.closeTimeout)),
            now: .uptimeNanoseconds(0))
        self.writeWait = TimeAmount(saturating: configuration.writeWait)
    }

    private let compression: CompressionAgreement?
    private var deflater: Deflater?
    private var closedResultPromise: EventLoopPromise<CloseResult>?

    /// Completes when the connection has ended, with how it ended (the peer's close code and
    /// reason, a failure's, the code we sent when the peer never answered, or 1006). Available
    /// once the handler is in a pipeline; read it on the channel's event loop.
    public var closeResult: EventLoopFuture<CloseResult> {
        guard let promise = closedResultPromise else { preconditionFailure("closeResult is available once the handler is in a pipeline") }
        return promise.futureResult
    }

    // MARK: Lifecycle

    /// Starts the timers when the handler joins an active channel (the usual case after an upgrade).
    public func handlerAdded(context: ChannelHandlerContext) {
        closedResultPromise = context.eventLoop.makePromise(of: CloseResult.self)
        if context.channel.isActive { startTimers(context: context) }
    }

    /// Cancels the timers.
    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        if machine.state != .closed { _ = machine.channelClosed() }
        closedResultPromise?.succeed(machine.result ?? CloseResult(code: .abnormalClosure, reason: ""))
    }

    /// Starts the timers when the channel becomes active.
    public func channelActive(context: ChannelHandlerContext) {
        startTimers(context: context)
        context.fireChannelActive()
    }

    /// Reports a connection that ended without a close handshake as a failure (1006).
    public func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        if let report = machine.channelClosed() {
            context.fireChannelRead(wrapInboundOut(report))
        }
        closedResultPromise?.succeed(machine.result ?? CloseResult(code: .abnormalClosure, reason: ""))
        context.fireChannelInactive()
    }

    /// Reports a socket error as a failure and closes the channel.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if machine.state == .open || machine.state == .closeSent {
            configuration.log(.warning, "socket error: \(error)")
        }
        run(machine.socketError("\(error)"), context: context)
    }

    // MARK: Inbound

    /// Parses the bytes, passing up every message in them.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        machine.peerBytes(now: context.eventLoop.now)
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
                if machine.receivedPing() == .sendPong {
                    writeFrame(context: context, opcode: Engine.opPong, payload: payload, promise: nil)
                    needsFlush = true
                }
            case .pong:
                break
            case .close(let code, let reason):
                configuration.log(.info, "peer closed the connection: \(code) \(reason)")
                run(machine.receivedClose(code: CloseCode(rawValue: code), reason: reason), context: context)
            case .failure(let code, let reason):
                let error = WebSocketError(code: CloseCode(rawValue: code), reason: reason)
                configuration.log(.warning, "closing connection: \(error)")
                run(machine.fail(error), context: context)
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
        machine.applicationRead()
        context.read()
    }

    // MARK: Executing the state machine's actions

    private func run(_ action: ConnectionStateMachine.Action, context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        switch action {
        case .none:
            promise?.succeed(())
        case .sendPong, .sendPing, .checkLivenessAt:
            preconditionFailure("handled where the timer or frame is")
        case .close(let report, let frame, let then):
            if let report { context.fireChannelRead(wrapInboundOut(report)) }
            var written: EventLoopFuture<Void>? = nil
            if let frame {
                var bytes = context.channel.allocator.buffer(capacity: Int(8 + frame.reason.utf8.count))
                Engine.writeClose(into: &bytes, code: frame.code?.rawValue, reason: frame.reason)
                let p = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(bytes), promise: trackWrite(context: context, promise: p) ?? p)
                written = p.futureResult
            }
            if let promise {
                if let written { promise.completeWith(written) } else { promise.succeed(()) }
            }
            switch then {
            case .now:
                cancelTimers()
                context.close(promise: nil)
            case .afterFrame(let timeout):
                written?.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                armCloseTimer(context: context, timeout: timeout)
            case .whenPeerAnswers(let timeout):
                armCloseTimer(context: context, timeout: timeout)
            }
        }
    }

    private func armCloseTimer(context: ChannelHandlerContext, timeout: TimeAmount) {
        closeTimer?.cancel()
        closeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.configuration.log(.info, "peer did not complete the close handshake within closeTimeout")
            self.run(self.machine.closeTimeoutElapsed(), context: context)
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
            guard machine.canSend else { promise?.fail(WebSocketError.closed); return }
            guard payload.readableBytes <= 125 else {
                promise?.fail(WebSocketError(code: .protocolError, reason: "ping payload longer than 125 bytes"))
                return
            }
            writeFrame(context: context, opcode: Engine.opPing, payload: payload, promise: promise)
        case .close(let code, let reason):
            let action = machine.sendClose(code: code, reason: reason)
            if action != .none { configuration.log(.info, "closing connection: \(code.rawValue) \(reason)") }
            run(action, context: context, promise: promise)
        }
    }

    private func writeMessage(context: ChannelHandlerContext, opcode: UInt8, payload: ByteBuffer, compress: Bool = true,
                              promise: EventLoopPromise<Void>?) {
        guard machine.canSend else {
            promise?.fail(WebSocketError.closed)
            return
        }
        guard payload.readableBytes <= configuration.maxMessageSize else {
            promise?.fail(WebSocketError.outgoingMessageTooBig)
            return
        }
        // A message marked uncompressed, or under the threshold, never reaches the deflater (so
        // never its window, and never creates it); created on the first message worth compressing.
        if compress, let compression, let settings = configuration.compression, payload.readableBytes >= settings.threshold {
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
        guard pingTimer == nil, machine.state == .open else { return }
        let deadline = machine.start(now: context.eventLoop.now)
        schedulePing(context: context, in: machine.timers.pingPeriod)
        scheduleLiveness(context: context, at: deadline)
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

    private func schedulePing(context: ChannelHandlerContext, in delay: TimeAmount) {
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            guard case .sendPing(let next) = self.machine.pingDue() else { return }
            self.writeFrame(context: context, opcode: Engine.opPing, payload: ByteBuffer(), promise: nil)
            context.flush()
            self.schedulePing(context: context, in: next)
        }
    }

    private func scheduleLiveness(context: ChannelHandlerContext, at deadline: NIODeadline) {
        livenessTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            switch self.machine.livenessDue(now: context.eventLoop.now) {
            case .checkLivenessAt(let next):
                self.scheduleLiveness(context: context, at: next)
            case let action:
                if action != .none { self.configuration.log(.warning, "closing connection: \(WebSocketError.pongTimeout)") }
                self.run(action, context: context)
            }
        }
    }

    /// With `writeWait` set, wraps the write's promise so a write still pending after `writeWait`
    /// fails the connection. Writes complete in order, so one timer on the oldest suffices.
    private func trackWrite(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) -> EventLoopPromise<Void>? {
        guard writeWait > .zero else { return nil }
        let tracked = context.eventLoop.makePromise(of: Void.self)
        writeDeadlines.append(context.eventLoop.now + writeWait)
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
                self.configuration.log(.warning, "closing connection: \(WebSocketError.writeTimeout)")
                self.run(self.machine.writeTimedOut(), context: context)
            } else {
                self.scheduleWriteCheck(context: context)
            }
        }
    }
}

@available(*, unavailable)
extension WebSocketHandler: Sendable {}

extension TimeAmount {
    /// The duration in nanoseconds, saturating at `Int64.max` (about 292 years) instead of
    /// trapping: `.seconds(.max)` meant as "never" must not stop the process.
    package init(saturating duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow {
            self = .nanoseconds(seconds < 0 ? .min : .max)
            return
        }
        let (sum, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        self = .nanoseconds(overflow2 ? (ns < 0 ? .min : .max) : sum)
    }
}
