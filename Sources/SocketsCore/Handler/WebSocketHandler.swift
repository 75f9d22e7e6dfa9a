import Logging
public import NIOCore

/// The channel handler that owns the C engine for one WebSocket connection (server role, or
/// client role when ``WebSocketClient`` installs it).
///
/// Put it in a pipeline right after the HTTP handlers are removed (``WebSocketUpgrader`` does).
/// Its close and liveness decisions are made by one `ConnectionStateMachine` value; the handler
/// executes them and owns the timers.
///
/// Two ways to use it:
/// - **Callback API** (``init(configuration:behavior:)``): the ``WebSocketBehavior``'s closures
///   are called on the event loop, synchronously, for every message of a read, and reply with
///   ``WebSocketConnection/send(_:compress:)``; nothing is passed down the pipeline.
/// - **Pipeline** (``init(configuration:)``): inbound it passes up ``WebSocketInbound`` values;
///   outbound it takes ``WebSocketOutbound`` values (flushed on `flush`).
///
/// - Inbound bytes are parsed where they lie: the engine unmasks them in place, and a message that
///   arrived whole in one read is handed on as a slice of the read buffer, with no copy. (This is
///   why the handler must be the first to see inbound bytes and must not share them.)
/// - Output ("cork"): frames with payloads up to 16 KiB are written, header and payload, into one
///   per-connection buffer, reused across flushes; larger payloads go out as header + payload in
///   one gather write. Everything sent while a read is handled (replies, pongs, a close frame, in
///   order) is flushed once, when the read is done. No allocation per frame on this path.
///   In the client role every frame is masked with a fresh key from the system's CSPRNG: a
///   payload in the output buffer is masked there; a larger one is copied and the copy masked
///   (the caller's buffer is never changed).
/// - Backpressure: while the channel is not writable the socket is not read further, and sends
///   from other threads wait in their queue; the callback API sees ``WebSocketSendResult`` and
///   `drain`. While the application on top takes no more messages (the channel layer's full
///   inbox), the socket is still read and what follows is held for it, up to one
///   `maxMessageSize`: the peer's pings are answered, its close is seen, a silent peer is timed
///   out; only once that is held is the socket not read.
/// - Timers run on the event loop: a ping every `pingPeriod`; the connection fails when the peer
///   sends nothing for `pongWait` (our own sends do not count; while the socket is not read
///   because the application holds back, the clock is held); output that the socket has not
///   taken any of for `writeWait` fails it (one timer, armed after a flush that leaves bytes
///   pending); after our last frame the peer has `closeTimeout` before TCP is closed. In the
///   client role, once the close frames are exchanged, the server closes TCP first (RFC 6455
///   §7.1.1); the client closes it at `closeTimeout` if the server has not.
public final class WebSocketHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// Raw bytes from the socket.
    public typealias InboundIn = ByteBuffer
    /// Messages, the peer's close, failures (pipeline use).
    public typealias InboundOut = WebSocketInbound
    /// What to send (pipeline use).
    public typealias OutboundIn = WebSocketOutbound
    /// Frame bytes to the socket.
    public typealias OutboundOut = ByteBuffer

    /// Payloads up to this size are copied into the output buffer with their header; larger ones
    /// are written beside it (a copy costs more than a gather entry past this size).
    static let corkLimit = 16 * 1024
    private static let corkInitialCapacity = 2048
    private static let corkMaxKeptCapacity = 64 * 1024

    private let engine: Engine
    private let role: WebSocketRole
    private var random = SystemRandomNumberGenerator()
    // What the handler needs of its configuration after `init`, not the whole configuration
    // (its timers, limits and settings are memory per connection: about 0.2 KiB).
    /// The connection's log lines.
    private let log: ConnectionLog
    private let maxMessageSize: Int
    private let maxBufferedAmount: Int
    private let backpressurePolicy: WebSocketConfiguration.BackpressurePolicy
    /// The route's permessage-deflate settings, when the extension was agreed.
    private let compressionSettings: CompressionSettings?
    private var machine: ConnectionStateMachine
    private let compression: CompressionAgreement?
    private var deflater: Deflater?
    /// Made when someone asks for ``closeResult`` (the channel layer does; the callback API
    /// need not), so an idle callback-API connection holds no promise.
    private var closedResultPromise: EventLoopPromise<CloseResult>?
    private var finalResult: CloseResult?

    // The application on top (callback API or channel layer); nil in pipeline use.
    private var application: (any WebSocketApplication)?
    private var context: ChannelHandlerContext?
    private var opened = false
    package var userData: AnyObject?
    private var queue: OutboundQueue?
    private var queueCapacity = 1024
    private var batch: [(WebSocketOutbound, compress: Bool)] = []
    private var draining = false
    private var drainAgain = false
    /// The hop that drains the queue, made once per connection (no closure per batch).
    private var drainHop: (@Sendable () -> Void)?

    // Output.
    private var out: ByteBuffer?
    private var handedOff = 0
    private var needsFlush = false
    private var inRead = false
    private var overLimit = false
    /// The channel's writability, as of the last `channelWritabilityChanged` (read on every send
    /// and read: asking the channel is a retain and a release of it each time).
    private var writable = true

    // Reading.
    private var readPending = false
    /// The application's inbox is full (``pauseReading()``): messages go to `held` instead.
    private var readingPaused = false
    /// Messages parsed while the application is not reading, in order, for it to take once it
    /// has room (``resumeReading(context:)``). The socket is still read meanwhile, so the peer's
    /// pings are answered, its close is seen and a silent peer is timed out by pongWait; reading
    /// stops only once `heldCost` reaches `holdLimit` (one maxMessageSize, plus what the last
    /// read brought). Slices of a read buffer are copied, so they do not pin it. No storage until
    /// something is held (an idle connection holds none), and none again once it is all taken.
    private var held = HeldMessages()
    private var heldCost = 0
    private var holdLimit: Int { maxMessageSize }
    /// What one held message costs beyond its bytes, so that empty messages are bounded too.
    static let heldEntryCost = 64
    /// Whether `pendingEnding` was reported to the application (it is not while messages
    /// before it are still held).
    private var pendingEndingReported = false
    /// A close or failure parsed while the application still held messages received before it:
    /// processed once it has caught up, or at closeTimeout.
    private var pendingEnding: Engine.Step?

    // Timers.
    // Timers: deadlines, and one scheduled callback per connection at the earliest of them (no
    // promise, closure or task per timer: an idle connection holds one entry in the loop's heap).
    private var pingAt: NIODeadline?
    private var livenessAt: NIODeadline?
    private var closeAt: NIODeadline?
    private var closeIsForPendingEnding = false
    private var writeCheckAt: NIODeadline?
    private var tick: NIOScheduledCallback?
    private var tickAt: NIODeadline?
    private var writtenWhenArmed = 0
    /// NIO's default high write watermark: while the channel is writable, about this many bytes
    /// at most wait in it, so `bufferedAmount` needs no query on the common path. (Not read from
    /// the channel: some channels, EmbeddedChannel among them, stop the process on an option
    /// they do not know.)
    private let highWatermark = 64 * 1024
    private var steps: [(Engine.Step, Int)] = []
    private let writeWait: TimeAmount

    // Metrics: added up here and reported once per flush (no call per frame).
    private let metrics: WebSocketMetrics
    private var countedOpen = false
    private var outMessages = 0
    private var outBytes = 0
    private var deflateBefore = 0
    private var deflateAfter = 0

    /// Creates the handler for one connection, for use in a pipeline.
    ///
    /// - Parameter configuration: limits, timers, compression, logging.
    /// - Throws: ``OptionsError`` when the configuration is inconsistent.
    public convenience init(configuration: WebSocketConfiguration) throws {
        try self.init(configuration: configuration, compression: nil)
    }

    /// Creates the handler for one connection with the event-loop callback API.
    ///
    /// - Parameters:
    ///   - configuration: limits, timers, compression, logging.
    ///   - behavior: what to do on open, for each message, on drain and on close.
    /// - Throws: ``OptionsError`` when the configuration is inconsistent.
    public convenience init(configuration: WebSocketConfiguration, behavior: WebSocketBehavior) throws {
        try self.init(configuration: configuration, compression: nil)
        application = BehaviorApplication(behavior)
    }

    /// With permessage-deflate agreed in the handshake (see ``WebSocketUpgrader``).
    package init(configuration: WebSocketConfiguration, compression: CompressionAgreement?, behavior: WebSocketBehavior? = nil,
                 role: WebSocketRole = .server) throws {
        try configuration.validate()
        self.log = configuration.connectionLog
        self.maxMessageSize = configuration.maxMessageSize
        self.maxBufferedAmount = configuration.maxBufferedAmount
        self.backpressurePolicy = configuration.backpressurePolicy
        self.compressionSettings = compression == nil ? nil : configuration.compression
        self.compression = compression
        self.role = role
        // Shared mode (server): the thread's inflater pool, when the client agreed to reset after
        // every message.
        let pooled = role == .server && configuration.compression?.memory == .shared && compression?.clientNoContextTakeover == true
        self.engine = try Engine(maxMessageSize: configuration.maxMessageSize, maxFrameSize: configuration.effectiveMaxFrameSize,
                                 compression: compression, inflaters: pooled ? InflaterPool.current : nil, role: role)
        self.machine = ConnectionStateMachine(
            timers: .init(pingPeriod: TimeAmount(saturating: configuration.pingPeriod), pongWait: TimeAmount(saturating: configuration.pongWait),
                          closeTimeout: TimeAmount(saturating: configuration.closeTimeout)),
            now: .uptimeNanoseconds(0), role: role)
        self.writeWait = TimeAmount(saturating: configuration.writeWait)
        self.metrics = configuration.metrics
        self.application = behavior.map(BehaviorApplication.init)
    }

    /// Completes when the connection has ended, with how it ended (the peer's close code and
    /// reason, a failure's, the code we sent when the peer never answered, or 1006). Available
    /// once the handler is in a pipeline; read it on the channel's event loop.
    public var closeResult: EventLoopFuture<CloseResult> {
        guard let context else { preconditionFailure("closeResult is available once the handler is in a pipeline") }
        if let finalResult { return context.eventLoop.makeSucceededFuture(finalResult) }
        let promise = closedResultPromise ?? context.eventLoop.makePromise(of: CloseResult.self)
        closedResultPromise = promise
        return promise.futureResult
    }

    /// The connection's configuration (its logger carries the connection's log metadata).
    package var connectionLog: ConnectionLog { log }

    /// Puts an application on top of the handler (the channel layer's socket). Call it on the
    /// event loop before the first read is handled, e.g. from a route's `onUpgrade`.
    /// The sender of a connection whose application is attached next (the channel layer makes
    /// its socket with it first), or nil when the handler has left its pipeline (the connection
    /// is gone). On the event loop.
    package func makeSender(queueCapacity: Int) -> WebSocketSender? {
        guard let context, !opened else { return nil }
        self.queueCapacity = queueCapacity
        return sender(context: context)
    }

    package func attach(_ application: any WebSocketApplication, queueCapacity: Int) {
        self.application = application
        self.queueCapacity = queueCapacity
        if let context, !opened {
            opened = true
            application.open(WebSocketConnection(handler: self, context: context))
        }
    }

    // MARK: Lifecycle

    /// Starts the timers when the handler joins an active channel (the usual case after an upgrade).
    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        engine.allocator = context.channel.allocator // reassembled messages are buffers of it
        writable = context.channel.isWritable
        if context.channel.isActive { start(context: context) }
    }

    /// Cancels the timers; reports the end if the channel did not.
    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        if machine.state != .closed { _ = machine.channelClosed() }
        finish(context: context)
        self.context = nil
    }

    /// Starts the timers when the channel becomes active.
    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    /// Reports a connection that ended without a close handshake as a failure (1006).
    public func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        if let report = machine.channelClosed() { deliver(report, context: context) }
        finish(context: context)
        context.fireChannelInactive()
    }

    private func start(context: ChannelHandlerContext) {
        if !countedOpen, finalResult == nil {
            countedOpen = true
            metrics.opened()
        }
        if let application, !opened {
            opened = true
            application.open(WebSocketConnection(handler: self, context: context))
        }
        guard livenessAt == nil, machine.state == .open else { return }
        let now = context.eventLoop.now
        livenessAt = machine.start(now: now)
        pingAt = now + machine.timers.pingPeriod
        reschedule(context: context)
    }

    private func finish(context: ChannelHandlerContext) {
        guard finalResult == nil else { return }
        dropHeld()
        let result = machine.result ?? CloseResult(code: .abnormalClosure, reason: "")
        finalResult = result
        reportOutput()
        if countedOpen { metrics.closed() }
        queue?.close()
        drainHop = nil // it holds the handler
        closedResultPromise?.succeed(result)
        closedResultPromise = nil
        if let application {
            self.application = nil
            application.closed(WebSocketConnection(handler: self, context: context), result)
        }
    }

    /// Reports a socket error as a failure and closes the channel.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if machine.state == .open || machine.state == .closeSent {
            log.log(.warning, "socket error: \(error)")
        }
        execute(machine.socketError("\(error)"), context: context)
    }

    // MARK: Inbound

    /// Parses the bytes and hands on every message in them; replies and pongs are flushed once,
    /// at `channelReadComplete`.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        machine.peerBytes(now: context.eventLoop.now)
        let base = buffer.readerIndex
        steps.removeAll(keepingCapacity: true)
        // Unmask in place: we are the read buffer's only consumer; the receive-buffer pool only
        // recycles storage that nobody else references.
        buffer.withUnsafeReadableBytes { raw in
            guard raw.count > 0 else { return }
            let all = UnsafeMutableRawBufferPointer(mutating: raw)
            var offset = 0
            parsing: while true {
                let (step, used) = engine.parse(UnsafeMutableRawBufferPointer(rebasing: all[offset...]))
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
        inRead = true
        var messages = 0
        var bytes = 0
        for (step, start) in steps {
            switch step {
            case .messageInPlace(let text, let offset, let length):
                messages += 1
                bytes += length
                let slice = buffer.getSlice(at: base + start + offset, length: length)!
                if readingPaused || !held.isEmpty {
                    var copy = engine.allocator.buffer(capacity: length) // not a slice that pins the read buffer
                    copy.writeImmutableBuffer(slice)
                    hold(text ? .text(copy) : .binary(copy))
                } else {
                    deliver(text ? .text(slice) : .binary(slice), context: context)
                }
            case .message(let text, let payload):
                messages += 1
                bytes += payload.readableBytes
                if readingPaused || !held.isEmpty {
                    hold(text ? .text(payload) : .binary(payload)) // the buffer it was reassembled in
                } else {
                    deliver(text ? .text(payload) : .binary(payload), context: context)
                }
            case .ping(let payload):
                if machine.receivedPing() == .sendPong {
                    appendFrame(context: context, opcode: Engine.opPong, payload: payload)
                }
            case .pong:
                if let application { application.pong(WebSocketConnection(handler: self, context: context)) }
            case .needMore, .closed:
                break
            case .close, .failure:
                ending(step, context: context)
            }
        }
        steps.removeAll(keepingCapacity: true)
        inRead = false
        if messages > 0 {
            metrics.received(messages: messages, bytes: bytes)
        }
    }

    /// Flushes what was sent while the read was handled, then passes the event on.
    public func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
        context.fireChannelReadComplete()
    }

    /// Asks for more data unless the application holds back (its inbox is full) and the messages
    /// held for it reach `holdLimit`, a close waits for the application, or the socket is not
    /// writable (the peer is not reading what we send, pongs included: we stop reading it).
    public func read(context: ChannelHandlerContext) {
        if holdingBack || pendingEnding != nil {
            readPending = true // the application is not reading: the liveness clock is held
            return
        }
        machine.applicationRead()
        if !writable {
            readPending = true
            return
        }
        context.read()
    }

    /// Resumes reading, or holds it back.
    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if let queue, queue.setPaused(!writable) { drainQueue(context: context) }
        if writable {
            resumeReadingIfHeld(context: context)
            if overLimit, !buffered(moreThan: maxBufferedAmount, context: context) {
                overLimit = false
                if let application { application.drain(WebSocketConnection(handler: self, context: context)) }
            }
        }
        context.fireChannelWritabilityChanged()
    }

    private func resumeReadingIfHeld(context: ChannelHandlerContext) {
        guard readPending, !holdingBack, pendingEnding == nil, writable else { return }
        readPending = false
        machine.applicationRead()
        context.read()
    }

    /// The socket is not read: the application is not reading and holds `holdLimit` of messages.
    private var holdingBack: Bool { readingPaused && heldCost >= holdLimit }

    /// The application's inbox is full: what follows is held here, and once that reaches
    /// `holdLimit` the socket is not read (TCP pushes back).
    package func pauseReading() { readingPaused = true }

    /// The application has room again: it gets the held messages first, in order.
    package func resumeReading(context: ChannelHandlerContext) {
        readingPaused = false
        deliverHeld(context: context)
        resumeReadingIfHeld(context: context)
    }

    private func hold(_ message: WebSocketInbound) {
        heldCost += Self.heldCost(message)
        held.append(message)
    }

    private static func heldCost(_ message: WebSocketInbound) -> Int {
        switch message {
        case .text(let b), .binary(let b): return b.readableBytes + heldEntryCost
        default: return heldEntryCost
        }
    }

    /// The connection is ending without the application taking them: let the held messages go.
    private func dropHeld() {
        held = HeldMessages()
        heldCost = 0
    }

    /// Hands the held messages to the application until it pauses again; once none is left, a
    /// close or failure parsed after them goes on as if it had just arrived.
    private func deliverHeld(context: ChannelHandlerContext) {
        guard !held.isEmpty, finalResult == nil else { return }
        let wasInRead = inRead
        inRead = true // one flush for what the application answers here
        while !readingPaused, let message = held.popFirst() {
            heldCost -= Self.heldCost(message)
            deliver(message, context: context)
        }
        inRead = wasInRead
        if held.isEmpty, let step = pendingEnding, !pendingEndingReported {
            pendingEnding = nil
            ending(step, context: context)
        }
        if !inRead { flushIfNeeded(context: context) }
    }

    /// The application has taken every message received before a held close or failure, and its
    /// replies are queued: send what waits, then the close.
    package func applicationCaughtUp(context: ChannelHandlerContext) {
        guard let step = pendingEnding, held.isEmpty else { return }
        drainQueue(context: context, closing: true)
        pendingEnding = nil
        process(step, context: context, report: !pendingEndingReported)
    }

    private func deliver(_ inbound: WebSocketInbound, context: ChannelHandlerContext) {
        guard let application else {
            context.fireChannelRead(wrapInboundOut(inbound))
            return
        }
        let connection = WebSocketConnection(handler: self, context: context)
        switch inbound {
        case .text(let b): application.message(connection, .text(b))
        case .binary(let b): application.message(connection, .binary(b))
        case .closed, .failed: application.ending(connection, inbound)
        }
    }

    /// The peer's close or a protocol failure, in order after the messages before it. With an
    /// application that still holds some of them unanswered, the close waits for it (bounded by
    /// closeTimeout); the report goes up at once, after those messages.
    private func ending(_ step: Engine.Step, context: ChannelHandlerContext) {
        if !held.isEmpty, machine.state == .open {
            // Messages before it are held for the application: reported after them.
            pendingEnding = step
            pendingEndingReported = false
            armCloseTimer(context: context, timeout: machine.timers.closeTimeout, forPendingEnding: true)
            return
        }
        if let application, machine.state == .open, application.holdsUnansweredMessages {
            switch step {
            case .close(let code, let reason): deliver(.closed(CloseCode(rawValue: code), reason: reason), context: context)
            case .failure(let code, let reason): deliver(.failed(WebSocketError(code: CloseCode(rawValue: code), reason: reason)), context: context)
            default: break
            }
            pendingEnding = step
            pendingEndingReported = true
            if closeAt == nil || !closeIsForPendingEnding { // a close held for messages keeps its first deadline
                armCloseTimer(context: context, timeout: machine.timers.closeTimeout, forPendingEnding: true)
            }
            return
        }
        process(step, context: context, report: true)
    }

    private func process(_ step: Engine.Step, context: ChannelHandlerContext, report: Bool = false) {
        switch step {
        case .close(let code, let reason):
            log.log(.info, "peer closed the connection: \(code) \(reason)", metadata: Self.closeMetadata(code, reason))
            metrics.closeReceived(code: code)
            execute(machine.receivedClose(code: CloseCode(rawValue: code), reason: reason), context: context, report: report)
        case .failure(let code, let reason):
            let error = WebSocketError(code: CloseCode(rawValue: code), reason: reason)
            log.log(.warning, "closing connection: \(error)", metadata: Self.closeMetadata(code, reason))
            execute(machine.fail(error), context: context, report: report)
        default:
            break
        }
    }

    // MARK: Executing the state machine's actions

    private func execute(_ action: ConnectionStateMachine.Action, context: ChannelHandlerContext, report: Bool = true,
                         promise: EventLoopPromise<Void>? = nil) {
        switch action {
        case .none:
            promise?.succeed(())
        case .sendPong, .sendPing, .checkLivenessAt:
            preconditionFailure("handled where the timer or frame is")
        case .close(let inbound, let frame, let then):
            // Nothing is sent after this: later sends are refused, not dropped in silence.
            queue?.close()
            if report, let inbound { deliver(inbound, context: context) }
            var written: EventLoopFuture<Void>? = nil
            if let frame {
                metrics.closeSent(code: frame.code.map { Engine.isValidCloseCode($0.rawValue) ? $0.rawValue : 1005 } ?? 1005)
                prepareCork(context: context)
                Engine.writeClose(into: &out!, code: frame.code?.rawValue, reason: frame.reason,
                                  maskKey: role == .client ? random.next() as UInt32 : nil)
                let p = promise ?? context.eventLoop.makePromise(of: Void.self)
                handOff(context: context, promise: p)
                context.flush()
                needsFlush = false
                written = p.futureResult
            } else {
                promise?.succeed(())
            }
            switch then {
            case .now:
                cancelTimers()
                context.close(promise: nil)
            case .afterFrame(let timeout):
                written?.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                armCloseTimer(context: context, timeout: timeout)
            case .whenPeerAnswers(let timeout), .whenPeerClosesTCP(let timeout):
                armCloseTimer(context: context, timeout: timeout)
            }
        }
    }

    private func closeTimeoutElapsed(context: ChannelHandlerContext) {
        log.log(.info, machine.waitingForPeerTCPClose ? "server did not close TCP within closeTimeout after the close handshake; closing it"
                                                                : "peer did not complete the close handshake within closeTimeout")
        execute(machine.closeTimeoutElapsed(), context: context)
    }

    private func armCloseTimer(context: ChannelHandlerContext, timeout: TimeAmount, forPendingEnding: Bool = false) {
        closeAt = context.eventLoop.now + timeout
        closeIsForPendingEnding = forPendingEnding
        reschedule(context: context)
    }

    // MARK: Output

    /// Frames a message into the output, after the checks; compresses it first when agreed.
    private func frameMessage(context: ChannelHandlerContext, _ message: WebSocketMessage, compress: Bool) -> WebSocketSendResult {
        guard machine.canSend else { return .closed }
        let (opcode, payload): (UInt8, ByteBuffer) = switch message {
        case .text(let b): (Engine.opText, b)
        case .binary(let b): (Engine.opBinary, b)
        }
        guard payload.readableBytes <= maxMessageSize else { return .tooBig }
        outMessages &+= 1
        outBytes &+= payload.readableBytes
        // A message marked uncompressed, or under the threshold, never reaches the deflater (so
        // never its window, and never creates it); created on the first message worth compressing.
        if compress, let compression, let settings = compressionSettings, payload.readableBytes >= settings.threshold {
            if deflater == nil {
                deflater = settings.memory == .shared ? Deflater.shared(settings: settings)
                    : Deflater(settings: settings, agreement: compression, role: role)
            }
            if let deflater, let (compressed, isCompressed) = deflater.compress(payload, allocator: context.channel.allocator) {
                if isCompressed {
                    deflateBefore &+= payload.readableBytes
                    deflateAfter &+= compressed.readableBytes
                }
                appendFrame(context: context, opcode: opcode, payload: compressed, rsv: isCompressed ? 0x40 : 0)
                return .sent
            }
        }
        appendFrame(context: context, opcode: opcode, payload: payload)
        return .sent
    }

    private func prepareCork(context: ChannelHandlerContext) {
        if out == nil {
            out = context.channel.allocator.buffer(capacity: Self.corkInitialCapacity)
        } else if out!.readableBytes == 0 {
            if out!.capacity > Self.corkMaxKeptCapacity {
                out = context.channel.allocator.buffer(capacity: Self.corkInitialCapacity)
            } else {
                // Storage the channel no longer holds is reused; otherwise clear() allocates.
                out!.clear()
            }
        }
    }

    private func appendFrame(context: ChannelHandlerContext, opcode: UInt8, payload: ByteBuffer, rsv: UInt8 = 0) {
        prepareCork(context: context)
        if role == .client {
            appendMaskedFrame(context: context, opcode: opcode, payload: payload, rsv: rsv)
            return
        }
        let length = payload.readableBytes
        Engine.writeHeader(into: &out!, opcode: opcode, length: length, rsv: rsv)
        if length <= Self.corkLimit {
            out!.writeImmutableBuffer(payload)
        } else {
            handOff(context: context, promise: nil)
            handedOff &+= length
            context.write(wrapOutboundOut(payload), promise: nil)
        }
        needsFlush = true
        if !inRead { flushIfNeeded(context: context) }
    }

    /// Client role: a fresh masking key from the CSPRNG for every frame; the payload is masked in
    /// the output buffer (small) or in a copy (large), never in the caller's buffer.
    private func appendMaskedFrame(context: ChannelHandlerContext, opcode: UInt8, payload: ByteBuffer, rsv: UInt8) {
        let length = payload.readableBytes
        let key = random.next() as UInt32
        Engine.writeHeader(into: &out!, opcode: opcode, length: length, rsv: rsv, maskKey: key)
        if length <= Self.corkLimit {
            let start = out!.readableBytes
            out!.writeImmutableBuffer(payload)
            out!.withUnsafeMutableReadableBytes { Engine.mask(UnsafeMutableRawBufferPointer(rebasing: $0[start...]), key: key) }
        } else {
            var copy = context.channel.allocator.buffer(capacity: length)
            copy.writeImmutableBuffer(payload)
            copy.withUnsafeMutableReadableBytes { Engine.mask($0, key: key) }
            handOff(context: context, promise: nil)
            handedOff &+= length
            context.write(wrapOutboundOut(copy), promise: nil)
        }
        needsFlush = true
        if !inRead { flushIfNeeded(context: context) }
    }

    /// Passes the output buffer's bytes to the channel (without a flush).
    private func handOff(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard let o = out, o.readableBytes > 0 else {
            promise?.succeed(())
            return
        }
        handedOff &+= o.readableBytes
        context.write(wrapOutboundOut(o), promise: promise)
        out!.moveReaderIndex(to: out!.writerIndex)
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        guard needsFlush else { return }
        needsFlush = false
        handOff(context: context, promise: nil)
        context.flush()
        afterFlush(context: context)
        reportOutput()
    }

    /// Reports the messages and bytes framed since the last report.
    private func reportOutput() {
        guard outMessages > 0 else { return }
        metrics.sent(messages: outMessages, bytes: outBytes)
        outMessages = 0
        outBytes = 0
        if deflateBefore > 0 {
            metrics.deflated(before: deflateBefore, after: deflateAfter)
            deflateBefore = 0
            deflateAfter = 0
        }
    }

    private func pendingBytes(context: ChannelHandlerContext) -> Int {
        (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    /// Bytes sent but not yet taken by the socket.
    func bufferedAmount(context: ChannelHandlerContext) -> Int {
        (out?.readableBytes ?? 0) + pendingBytes(context: context)
    }

    /// Whether more than `limit` bytes wait unsent. Asks the channel only when it could be so:
    /// while the channel is writable it holds at most its high watermark.
    private func buffered(moreThan limit: Int, context: ChannelHandlerContext) -> Bool {
        let corked = out?.readableBytes ?? 0
        if writable && corked + highWatermark <= limit { return false }
        return corked + pendingBytes(context: context) > limit
    }

    /// writeWait: one timer, armed by the first flush after it last fired (so a busy connection
    /// arms it once per writeWait, not per write); when it fires, bytes still pending and none
    /// taken by the socket since it was armed fail the connection.
    private func afterFlush(context: ChannelHandlerContext) {
        guard writeWait > .zero, writeCheckAt == nil, machine.state != .closed else { return }
        writtenWhenArmed = handedOff &- pendingBytes(context: context)
        writeCheckAt = context.eventLoop.now + writeWait
        reschedule(context: context)
    }

    private func writeCheckDue(context: ChannelHandlerContext) {
        let pending = pendingBytes(context: context)
        guard pending > 0 else { return }
        let written = handedOff &- pending
        if written != writtenWhenArmed {
            writtenWhenArmed = written // progress: wait another writeWait
            writeCheckAt = context.eventLoop.now + writeWait
        } else {
            log.log(.warning, "closing connection: \(WebSocketError.writeTimeout)", metadata: Self.closeMetadata(WebSocketError.writeTimeout))
            execute(machine.writeTimedOut(), context: context)
        }
    }

    // MARK: The callback API and other threads

    var canSend: Bool { machine.canSend }

    func sendFromApplication(_ message: WebSocketMessage, compress: Bool, context: ChannelHandlerContext) -> WebSocketSendResult {
        guard machine.canSend else { return .closed }
        if buffered(moreThan: maxBufferedAmount, context: context) {
            switch backpressurePolicy {
            case .drop:
                overLimit = true
                metrics.dropped()
                return .dropped
            case .close:
                let error = WebSocketError(code: .policyViolation, reason: "peer does not read: more than maxBufferedAmount unsent")
                log.log(.warning, "closing connection: \(error)", metadata: Self.closeMetadata(error))
                execute(machine.fail(error), context: context)
                return .closed
            }
        }
        let result = frameMessage(context: context, message, compress: compress)
        if result == .sent, buffered(moreThan: maxBufferedAmount, context: context) {
            overLimit = true
            return .backpressure
        }
        return result
    }

    func pingFromApplication(_ payload: ByteBuffer, context: ChannelHandlerContext) -> WebSocketSendResult {
        guard machine.canSend else { return .closed }
        guard payload.readableBytes <= 125 else { return .tooBig }
        appendFrame(context: context, opcode: Engine.opPing, payload: payload)
        return .sent
    }

    func closeFromApplication(_ code: CloseCode, reason: String, context: ChannelHandlerContext) {
        if machine.canSend { drainQueue(context: context, closing: true) } // what other threads sent before goes first
        let action = machine.sendClose(code: code, reason: reason)
        if action != .none { log.log(.info, "closing connection: \(code.rawValue) \(reason)", metadata: Self.closeMetadata(code.rawValue, reason)) }
        execute(action, context: context)
    }

    func sender(context: ChannelHandlerContext) -> WebSocketSender {
        let queue = self.queue ?? {
            let q = OutboundQueue(capacity: queueCapacity)
            if !context.channel.isWritable { _ = q.setPaused(true) }
            if !machine.canSend { q.close() }
            self.queue = q
            return q
        }()
        let loop = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let hop = drainHop ?? { @Sendable in loop.value.drainQueue(context: boundContext.value) }
        drainHop = hop
        return WebSocketSender(queue: queue, loop: loop, context: boundContext, drain: hop,
                               maxMessageSize: maxMessageSize)
    }

    /// Takes what other threads queued, frames it, and flushes once. Not re-entered: a drain
    /// asked for while one runs (a flush that makes the channel writable again) is done by the
    /// running one, after its batch, so frames keep their order.
    ///
    /// `closing`: our close follows at once: the queue is ended and everything in it taken (even
    /// while paused), so every send that was accepted goes out before the close frame, and every
    /// later one is refused (`.closed`), none dropped in silence.
    func drainQueue(context: ChannelHandlerContext, closing: Bool = false) {
        guard let queue else { return }
        if closing {
            if draining { return } // the running drain takes the rest: the close is in its batch
            var frames: [(WebSocketOutbound, compress: Bool)] = []
            swap(&frames, &batch)
            queue.closeAndTake(into: &frames)
            swap(&frames, &batch)
        }
        if draining {
            drainAgain = true
            return
        }
        draining = true
        let wasInRead = inRead
        inRead = true // one flush for the whole batch
        repeat {
            drainAgain = false
            var frames: [(WebSocketOutbound, compress: Bool)] = []
            swap(&frames, &batch) // this connection's array, empty (or what closeAndTake took), with its capacity
            if frames.isEmpty { queue.take(into: &frames) } // the queue keeps our empty array: no allocation either side
            for (frame, compress) in frames {
                switch frame {
                case .text(let b): _ = frameMessage(context: context, .text(b), compress: compress)
                case .binary(let b): _ = frameMessage(context: context, .binary(b), compress: compress)
                case .uncompressed(let m): _ = frameMessage(context: context, m, compress: false)
                case .ping(let b): _ = pingFromApplication(b, context: context)
                case .close(let code, let reason): closeFromApplication(code, reason: reason, context: context)
                }
            }
            frames.removeAll(keepingCapacity: true)
            swap(&frames, &batch)
        } while drainAgain
        draining = false
        inRead = wasInRead
        if !inRead { flushIfNeeded(context: context) }
    }

    // MARK: Pipeline outbound

    /// Frames and queues a message, a ping or our close frame (flushed on `flush`).
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let wasInRead = inRead
        inRead = true // pipeline writes wait for the pipeline's flush
        defer { inRead = wasInRead }
        let result: WebSocketSendResult
        switch unwrapOutboundIn(data) {
        case .text(let payload): result = frameMessage(context: context, .text(payload), compress: true)
        case .binary(let payload): result = frameMessage(context: context, .binary(payload), compress: true)
        case .uncompressed(let message): result = frameMessage(context: context, message, compress: false)
        case .ping(let payload):
            guard payload.readableBytes <= 125 else {
                promise?.fail(WebSocketError(code: .protocolError, reason: "ping payload longer than 125 bytes"))
                return
            }
            result = pingFromApplication(payload, context: context)
        case .close(let code, let reason):
            if machine.canSend { drainQueue(context: context, closing: true) } // what other threads sent before goes first
            let action = machine.sendClose(code: code, reason: reason)
            if action != .none { log.log(.info, "closing connection: \(code.rawValue) \(reason)", metadata: Self.closeMetadata(code.rawValue, reason)) }
            execute(action, context: context, promise: promise)
            return
        }
        switch result {
        case .sent, .backpressure:
            // The promise completes when the output buffer holding the frame is written.
            if let promise { handOff(context: context, promise: promise) }
        case .closed, .dropped: promise?.fail(WebSocketError.closed)
        case .tooBig: promise?.fail(WebSocketError.outgoingMessageTooBig)
        }
    }

    /// Flushes the output.
    public func flush(context: ChannelHandlerContext) {
        needsFlush = true
        flushIfNeeded(context: context)
    }

    /// A close line's metadata: the code and the reason.
    private static func closeMetadata(_ code: UInt16, _ reason: String) -> Logger.Metadata {
        ["ws.close_code": "\(code)", "ws.close_reason": "\(reason)"]
    }

    private static func closeMetadata(_ error: WebSocketError) -> Logger.Metadata {
        closeMetadata(error.code.rawValue, error.reason)
    }

    // MARK: Timers

    private func cancelTimers() {
        pingAt = nil
        livenessAt = nil
        closeAt = nil
        writeCheckAt = nil
        if let tick, let context {
            context.eventLoop.assumeIsolated().cancelScheduledCallback(tick)
        }
        tick = nil
        tickAt = nil
    }

    /// Schedules the one callback at the earliest deadline, unless one is due earlier already.
    private func reschedule(context: ChannelHandlerContext) {
        let next = [pingAt, livenessAt, closeAt, writeCheckAt].compactMap { $0 }.min()
        guard let next else { return }
        if let tickAt, tickAt <= next { return }
        if let tick { context.eventLoop.assumeIsolated().cancelScheduledCallback(tick) }
        tickAt = next
        tick = try? context.eventLoop.assumeIsolated().scheduleCallback(at: next, handler: TimerTarget(handler: self))
    }

    /// The scheduled callback: runs every timer that is due, then schedules the next.
    fileprivate func timersDue() {
        guard let context else { return }
        tick = nil
        tickAt = nil
        let now = context.eventLoop.now
        if let at = closeAt, at <= now {
            closeAt = nil
            if closeIsForPendingEnding, let step = pendingEnding {
                pendingEnding = nil
                log.log(.info, "application did not answer the messages before the close within closeTimeout")
                dropHeld()
                process(step, context: context, report: !pendingEndingReported)
            } else if !closeIsForPendingEnding {
                closeTimeoutElapsed(context: context)
            }
        }
        if let at = writeCheckAt, at <= now {
            writeCheckAt = nil
            writeCheckDue(context: context)
        }
        if let at = pingAt, at <= now {
            if case .sendPing(let next) = machine.pingDue() {
                pingAt = now + next
                appendFrame(context: context, opcode: Engine.opPing, payload: ByteBuffer())
            } else {
                pingAt = nil
            }
        }
        if let at = livenessAt, at <= now {
            switch machine.livenessDue(now: now) {
            case .checkLivenessAt(let next):
                livenessAt = next
            case let action:
                livenessAt = nil
                if action != .none {
                    log.log(.warning, "closing connection: \(WebSocketError.pongTimeout)", metadata: Self.closeMetadata(WebSocketError.pongTimeout))
                    metrics.pingUnanswered()
                }
                execute(action, context: context)
            }
        }
        if self.context != nil, machine.state != .closed { reschedule(context: context) }
    }
}

/// The target of a connection's scheduled callback. A small struct, so the event loop's heap
/// entry holds it inline: no allocation per scheduling.
private struct TimerTarget: NIOScheduledCallbackHandler {
    let handler: WebSocketHandler
    func handleScheduledCallback(eventLoop: some EventLoop) { handler.timersDue() }
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

/// The messages a handler holds for an application that is not reading: a FIFO queue that
/// allocates nothing while empty (most connections never hold a message).
struct HeldMessages {
    private var buffer: CircularBuffer<WebSocketInbound>?

    var isEmpty: Bool { buffer?.isEmpty ?? true }

    mutating func append(_ message: WebSocketInbound) {
        if buffer == nil { buffer = CircularBuffer(initialCapacity: 4) }
        buffer!.append(message)
    }

    /// The oldest message; the storage is let go with the last one.
    mutating func popFirst() -> WebSocketInbound? {
        guard let first = buffer?.popFirst() else { return nil }
        if buffer!.isEmpty { buffer = nil }
        return first
    }
}
