package import NIOCore

/// How a connection ended: the close code its owner reports and the reason that came with it.
public struct CloseResult: Sendable, Equatable, CustomStringConvertible {
    /// The peer's close code (``CloseCode/noStatusReceived`` when its close frame had none), the
    /// failure's code, the code we sent when the peer never answered, or
    /// ``CloseCode/abnormalClosure`` when TCP ended without a close handshake.
    public let code: CloseCode
    /// The reason that came with the code (the peer's, or the failure's), possibly empty.
    public let reason: String

    /// Creates a result.
    public init(code: CloseCode, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// `"<code> <reason>"`.
    public var description: String { reason.isEmpty ? "\(code.rawValue)" : "\(code.rawValue) \(reason)" }
}

/// The close and liveness state of one connection, as a value: open → closing (we sent our
/// close frame, or sent our last frame after the peer's close or a failure) → closed.
///
/// Its methods take what happened and return what to do; the ``WebSocketHandler`` executes the
/// actions and owns the timers, and nothing else keeps close state. Pure and deterministic: tests
/// drive it with made-up times and no channel.
package struct ConnectionStateMachine {
    /// Where the connection is.
    package enum State: Equatable, Sendable {
        /// Messages flow both ways.
        case open
        /// We sent our close frame and wait for the peer's (bounded by closeTimeout).
        case closeSent
        /// Our last frame (the answer to the peer's close, or the close for a failure) is queued:
        /// TCP closes once it is written, or at closeTimeout.
        case closing
        /// TCP is closed.
        case closed
    }

    /// A close frame to write: `code` nil writes an empty close frame.
    package struct CloseFrame: Equatable, Sendable {
        package var code: CloseCode?
        package var reason: String
    }

    /// What the handler does next.
    package enum Action: Equatable {
        /// Nothing.
        case none
        /// Answer the peer's ping with a pong carrying its payload.
        case sendPong
        /// Send a ping and schedule the next one after `next`.
        case sendPing(next: TimeAmount)
        /// Check liveness again at this deadline.
        case checkLivenessAt(NIODeadline)
        /// Pass `report` up the pipeline (when set), write `frame` (when set), then close TCP as
        /// `then` says.
        case close(report: WebSocketInbound?, frame: CloseFrame?, then: TCPClose)
    }

    /// When TCP is closed after a close action.
    package enum TCPClose: Equatable, Sendable {
        /// At once.
        case now
        /// Once the frame is written, or at closeTimeout if it cannot be (a peer that does not read).
        case afterFrame(timeout: TimeAmount)
        /// When the peer answers our close frame, or at closeTimeout.
        case whenPeerAnswers(timeout: TimeAmount)
        /// Client role, once the close frames are exchanged (ours written, or the peer's answer
        /// received): the server closes TCP first (RFC 6455 §7.1.1), so that its end, not ours,
        /// holds TIME_WAIT. We close at closeTimeout if it has not.
        case whenPeerClosesTCP(timeout: TimeAmount)
    }

    /// The timers' settings, converted once.
    package struct Timers: Sendable {
        package var pingPeriod: TimeAmount
        package var pongWait: TimeAmount
        package var closeTimeout: TimeAmount

        package init(pingPeriod: TimeAmount, pongWait: TimeAmount, closeTimeout: TimeAmount) {
            self.pingPeriod = pingPeriod
            self.pongWait = pongWait
            self.closeTimeout = closeTimeout
        }
    }

    package private(set) var state = State.open
    /// Set once, when the outcome is known.
    package private(set) var result: CloseResult?
    private var sentClose: CloseResult?
    private var lastReceived: NIODeadline
    private var applicationReading = true
    let timers: Timers
    /// Client role: after the close handshake, the server closes TCP first.
    private let peerClosesTCPFirst: Bool
    /// Set when the close handshake is complete and we wait for the server to close TCP.
    package private(set) var waitingForPeerTCPClose = false

    /// - Parameter role: `.client` waits for the server to close TCP after the close handshake
    ///   (bounded by closeTimeout); `.server` closes TCP itself once the handshake is complete.
    package init(timers: Timers, now: NIODeadline, role: WebSocketRole = .server) {
        self.timers = timers
        self.lastReceived = now
        self.peerClosesTCPFirst = role == .client
    }

    /// Whether messages and pings may still be sent.
    package var canSend: Bool { state == .open }

    // MARK: Liveness

    /// Bytes arrived from the peer: the peer is alive, and the application has not yet asked
    /// for more.
    package mutating func peerBytes(now: NIODeadline) {
        lastReceived = now
        applicationReading = false
    }

    /// The application asked for more data.
    package mutating func applicationRead() { applicationReading = true }

    /// The first liveness deadline, when the connection starts.
    package mutating func start(now: NIODeadline) -> NIODeadline {
        lastReceived = now
        return now + timers.pongWait
    }

    /// The liveness timer fired: the peer has been silent for `pongWait` unless it spoke since,
    /// or the application is not reading (then the socket is not read either, and the peer is
    /// not at fault: the clock is held).
    package mutating func livenessDue(now: NIODeadline) -> Action {
        guard state == .open else { return .none }
        let due = lastReceived + timers.pongWait
        if now < due { return .checkLivenessAt(due) }
        if !applicationReading { return .checkLivenessAt(now + timers.pongWait) }
        return fail(.pongTimeout)
    }

    /// The ping timer fired.
    package func pingDue() -> Action {
        state == .open ? .sendPing(next: timers.pingPeriod) : .none
    }

    /// The peer pinged us: answer while open (RFC 6455 §5.5.2).
    package func receivedPing() -> Action {
        state == .open ? .sendPong : .none
    }

    // MARK: Closing

    /// The peer's close frame arrived. While open, answer it echoing the code (an empty close for
    /// a code that may not be sent) and, as the server, close TCP first (RFC 6455 §7.1.1) once the
    /// answer is written. After our own close, this completes the handshake: the server closes
    /// TCP at once. The client, in both cases, leaves TCP to the server and closes it itself only
    /// if the server has not within closeTimeout.
    package mutating func receivedClose(code: CloseCode, reason: String) -> Action {
        let report = WebSocketInbound.closed(code, reason: reason)
        switch state {
        case .open:
            state = .closing
            result = CloseResult(code: code, reason: reason)
            waitingForPeerTCPClose = peerClosesTCPFirst
            return .close(report: report, frame: CloseFrame(code: code.isSendable ? code : nil, reason: ""),
                          then: peerClosesTCPFirst ? .whenPeerClosesTCP(timeout: timers.closeTimeout) : .afterFrame(timeout: timers.closeTimeout))
        case .closeSent:
            state = .closing
            result = CloseResult(code: code, reason: reason)
            waitingForPeerTCPClose = peerClosesTCPFirst
            return .close(report: report, frame: nil, then: peerClosesTCPFirst ? .whenPeerClosesTCP(timeout: timers.closeTimeout) : .now)
        case .closing, .closed:
            return .none
        }
    }

    /// The connection failed (a protocol violation, a pong timeout): report it, send its close
    /// code unless our close frame already went, and close TCP.
    package mutating func fail(_ error: WebSocketError) -> Action {
        switch state {
        case .open:
            state = .closing
            result = CloseResult(code: error.code, reason: error.reason)
            return .close(report: .failed(error), frame: CloseFrame(code: error.code, reason: error.reason),
                          then: .afterFrame(timeout: timers.closeTimeout))
        case .closeSent:
            state = .closing
            result = CloseResult(code: error.code, reason: error.reason)
            return .close(report: .failed(error), frame: nil, then: .now)
        case .closing, .closed:
            return .none
        }
    }

    /// The application starts the close handshake.
    package mutating func sendClose(code: CloseCode, reason: String) -> Action {
        guard state == .open else { return .none }
        state = .closeSent
        sentClose = CloseResult(code: code, reason: reason)
        return .close(report: nil, frame: CloseFrame(code: code, reason: reason), then: .whenPeerAnswers(timeout: timers.closeTimeout))
    }

    /// closeTimeout passed after our close frame, after our last frame that could not be
    /// written, or (client) after the close handshake without the server closing TCP: close TCP.
    package mutating func closeTimeoutElapsed() -> Action {
        switch state {
        case .closeSent, .closing:
            if state == .closeSent { result = result ?? sentClose } // the peer never answered
            state = .closing
            waitingForPeerTCPClose = false
            return .close(report: nil, frame: nil, then: .now)
        case .open, .closed:
            return .none
        }
    }

    /// A write waited longer than writeWait: the socket takes none of our bytes, so a close frame
    /// would not get through either. Report and close TCP.
    package mutating func writeTimedOut() -> Action {
        switch state {
        case .open, .closeSent:
            state = .closing
            result = CloseResult(code: WebSocketError.writeTimeout.code, reason: WebSocketError.writeTimeout.reason)
            return .close(report: .failed(.writeTimeout), frame: nil, then: .now)
        case .closing:
            return .close(report: nil, frame: nil, then: .now)
        case .closed:
            return .none
        }
    }

    /// A socket error: report it (1006) unless the outcome is known, and close TCP.
    package mutating func socketError(_ description: String) -> Action {
        switch state {
        case .open, .closeSent:
            state = .closing
            let error = WebSocketError(code: .abnormalClosure, reason: description)
            result = CloseResult(code: error.code, reason: error.reason)
            return .close(report: .failed(error), frame: nil, then: .now)
        case .closing:
            return .close(report: nil, frame: nil, then: .now)
        case .closed:
            return .none
        }
    }

    /// TCP is closed. Returns what to report: a connection that was open ended without a close
    /// handshake (1006); after our close frame with no answer, the outcome is the code we sent.
    package mutating func channelClosed() -> WebSocketInbound? {
        defer {
            state = .closed
            waitingForPeerTCPClose = false
        }
        switch state {
        case .open:
            let error = WebSocketError(code: .abnormalClosure, reason: "connection lost without a close frame")
            result = CloseResult(code: error.code, reason: error.reason)
            return .failed(error)
        case .closeSent:
            result = result ?? sentClose
            return nil
        case .closing, .closed:
            if result == nil { result = CloseResult(code: .abnormalClosure, reason: "") }
            return nil
        }
    }
}
