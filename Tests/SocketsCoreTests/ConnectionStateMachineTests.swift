import NIOCore
@testable import SocketsCore
import Testing

/// The connection state machine driven directly: no channel, made-up times. Every transition and
/// every timer (ping, pong wait, write wait, close timeout).
@Suite struct ConnectionStateMachineTests {
    static let timers = ConnectionStateMachine.Timers(pingPeriod: .seconds(2), pongWait: .seconds(5), closeTimeout: .seconds(3))
    static func at(_ s: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(s) * 1_000_000_000) }

    func machine() -> ConnectionStateMachine {
        var m = ConnectionStateMachine(timers: Self.timers, now: Self.at(0))
        #expect(m.start(now: Self.at(0)) == Self.at(5))
        return m
    }

    @Test func pingsWhileOpenOnly() {
        var m = machine()
        #expect(m.pingDue() == .sendPing(next: .seconds(2)))
        #expect(m.receivedPing() == .sendPong)
        _ = m.sendClose(code: .normalClosure, reason: "")
        #expect(m.pingDue() == .none)
        #expect(m.receivedPing() == .none)
        #expect(!m.canSend)
    }

    @Test func livenessFollowsThePeerAndHoldsWhileTheApplicationIsNotReading() {
        var m = machine()
        m.peerBytes(now: Self.at(3))
        // At the first deadline the peer has spoken since: check again 5 s after it spoke.
        #expect(m.livenessDue(now: Self.at(5)) == .checkLivenessAt(Self.at(8)))
        // The application has not asked for more since those bytes: the clock is held.
        #expect(m.livenessDue(now: Self.at(8)) == .checkLivenessAt(Self.at(13)))
        m.applicationRead()
        let action = m.livenessDue(now: Self.at(13))
        #expect(action == .close(report: .failed(.pongTimeout),
                                 frame: .init(code: .goingAway, reason: WebSocketError.pongTimeout.reason),
                                 then: .afterFrame(timeout: .seconds(3))))
        #expect(m.state == .closing)
        #expect(m.result == CloseResult(code: .goingAway, reason: WebSocketError.pongTimeout.reason))
        #expect(m.livenessDue(now: Self.at(20)) == .none)
    }

    @Test func peerCloseIsAnsweredEchoingTheCodeThenTCPCloses() {
        var m = machine()
        #expect(m.receivedClose(code: 4000, reason: "bye") ==
                .close(report: .closed(4000, reason: "bye"), frame: .init(code: 4000, reason: ""), then: .afterFrame(timeout: .seconds(3))))
        #expect(m.state == .closing && !m.canSend)
        // A second close, or a failure, changes nothing now.
        #expect(m.receivedClose(code: 1000, reason: "") == .none)
        #expect(m.fail(WebSocketError(code: .protocolError, reason: "x")) == .none)
        #expect(m.channelClosed() == nil)
        #expect(m.state == .closed && m.result == CloseResult(code: 4000, reason: "bye"))
    }

    @Test func closeWithoutCodeIsAnsweredWithAnEmptyClose() {
        var m = machine()
        #expect(m.receivedClose(code: .noStatusReceived, reason: "") ==
                .close(report: .closed(.noStatusReceived, reason: ""), frame: .init(code: nil, reason: ""), then: .afterFrame(timeout: .seconds(3))))
    }

    @Test func ourCloseWaitsForThePeerThenCompletes() {
        var m = machine()
        #expect(m.sendClose(code: 4001, reason: "done") ==
                .close(report: nil, frame: .init(code: 4001, reason: "done"), then: .whenPeerAnswers(timeout: .seconds(3))))
        #expect(m.state == .closeSent)
        #expect(m.sendClose(code: 1000, reason: "") == .none)
        #expect(m.receivedClose(code: 4001, reason: "") == .close(report: .closed(4001, reason: ""), frame: nil, then: .now))
        #expect(m.channelClosed() == nil)
        #expect(m.result == CloseResult(code: 4001, reason: ""))
    }

    @Test func ourCloseTimesOutWhenThePeerNeverAnswers() {
        var m = machine()
        _ = m.sendClose(code: 4002, reason: "bye")
        #expect(m.closeTimeoutElapsed() == .close(report: nil, frame: nil, then: .now))
        #expect(m.channelClosed() == nil)
        // The outcome is the code we sent.
        #expect(m.result == CloseResult(code: 4002, reason: "bye"))
        #expect(m.closeTimeoutElapsed() == .none)
    }

    // MARK: Client role: the server closes TCP first (RFC 6455 §7.1.1)

    func clientMachine() -> ConnectionStateMachine {
        var m = ConnectionStateMachine(timers: Self.timers, now: Self.at(0), role: .client)
        _ = m.start(now: Self.at(0))
        return m
    }

    @Test func clientAnswersTheServersCloseThenWaitsForTheServerToCloseTCP() {
        var m = clientMachine()
        #expect(m.receivedClose(code: 4002, reason: "bye") ==
                .close(report: .closed(4002, reason: "bye"), frame: .init(code: 4002, reason: ""), then: .whenPeerClosesTCP(timeout: .seconds(3))))
        #expect(m.state == .closing && m.waitingForPeerTCPClose)
        // The server closes TCP in time: nothing left to do.
        #expect(m.channelClosed() == nil)
        #expect(m.result == CloseResult(code: 4002, reason: "bye"))
        #expect(!m.waitingForPeerTCPClose)
    }

    @Test func clientClosesTCPItselfWhenTheServerDoesNotAfterOurClose() {
        var m = clientMachine()
        #expect(m.sendClose(code: 4001, reason: "done") ==
                .close(report: nil, frame: .init(code: 4001, reason: "done"), then: .whenPeerAnswers(timeout: .seconds(3))))
        #expect(m.receivedClose(code: 4001, reason: "") ==
                .close(report: .closed(4001, reason: ""), frame: nil, then: .whenPeerClosesTCP(timeout: .seconds(3))))
        #expect(m.waitingForPeerTCPClose)
        // closeTimeout passes and the server has not closed TCP: we do.
        #expect(m.closeTimeoutElapsed() == .close(report: nil, frame: nil, then: .now))
        #expect(!m.waitingForPeerTCPClose)
        #expect(m.channelClosed() == nil)
        #expect(m.result == CloseResult(code: 4001, reason: ""))
    }

    @Test func clientFailureStillClosesAfterItsFrame() {
        var m = clientMachine()
        let error = WebSocketError(code: .protocolError, reason: "masked frame from the server")
        #expect(m.fail(error) == .close(report: .failed(error), frame: .init(code: .protocolError, reason: error.reason),
                                        then: .afterFrame(timeout: .seconds(3))))
        #expect(!m.waitingForPeerTCPClose)
    }

    @Test func protocolFailureSendsItsCodeOnceAndClosesAfterTheFrame() {
        var m = machine()
        let error = WebSocketError(code: .invalidPayload, reason: "invalid UTF-8")
        #expect(m.fail(error) == .close(report: .failed(error), frame: .init(code: .invalidPayload, reason: "invalid UTF-8"),
                                        then: .afterFrame(timeout: .seconds(3))))
        // The last frame is not written (a peer that does not read): closeTimeout closes TCP.
        #expect(m.closeTimeoutElapsed() == .close(report: nil, frame: nil, then: .now))
        #expect(m.channelClosed() == nil)
        #expect(m.result?.code == .invalidPayload)
    }

    @Test func failureAfterOurCloseClosesAtOnceWithoutAnotherFrame() {
        var m = machine()
        _ = m.sendClose(code: .normalClosure, reason: "")
        let error = WebSocketError(code: .protocolError, reason: "bad frame")
        #expect(m.fail(error) == .close(report: .failed(error), frame: nil, then: .now))
        #expect(m.result?.code == .protocolError)
    }

    @Test func writeTimeoutReportsAndClosesAtOnce() {
        var m = machine()
        #expect(m.writeTimedOut() == .close(report: .failed(.writeTimeout), frame: nil, then: .now))
        #expect(m.result?.code == WebSocketError.writeTimeout.code)
        #expect(m.writeTimedOut() == .close(report: nil, frame: nil, then: .now))
        _ = m.channelClosed()
        #expect(m.writeTimedOut() == .none)
    }

    @Test func socketErrorIs1006() {
        var m = machine()
        #expect(m.socketError("reset") == .close(report: .failed(WebSocketError(code: .abnormalClosure, reason: "reset")), frame: nil, then: .now))
        #expect(m.result?.code == .abnormalClosure)
    }

    @Test func droppedWhileOpenIs1006() {
        var m = machine()
        #expect(m.channelClosed() == .failed(WebSocketError(code: .abnormalClosure, reason: "connection lost without a close frame")))
        #expect(m.state == .closed && m.result?.code == .abnormalClosure)
        #expect(m.receivedClose(code: 1000, reason: "") == .none)
        #expect(m.sendClose(code: 1000, reason: "") == .none)
    }

    @Test func durationsBeyondTimeAmountSaturateInsteadOfTrapping() {
        #expect(TimeAmount(saturating: .seconds(Int64.max)) == .nanoseconds(.max))
        #expect(TimeAmount(saturating: .seconds(-Int64.max)) == .nanoseconds(.min))
        #expect(TimeAmount(saturating: .milliseconds(1500)) == .milliseconds(1500))
    }
}
