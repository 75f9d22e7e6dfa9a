import NIOConcurrencyHelpers
import NIOCore

/// What sits on top of a ``WebSocketHandler`` instead of the rest of the pipeline: the callback
/// API's behaviour, or the channel layer's socket. Called on the connection's event loop,
/// synchronously, in the order things happened.
package protocol WebSocketApplication: AnyObject {
    /// The connection is open (called once, when the handler starts).
    func open(_ connection: WebSocketConnection)
    /// A message, as a view of the unmasked payload (a slice of the read buffer when it arrived in
    /// one frame): valid during the call; keep the `ByteBuffer` (no copy) to use it later.
    func message(_ connection: WebSocketConnection, _ message: WebSocketMessage)
    /// The connection failed (a protocol error, a timeout) or the peer closed it: called before
    /// the close frame is sent, in order after the messages that came before.
    func ending(_ connection: WebSocketConnection, _ report: WebSocketInbound)
    /// The output has drained below the limit after backpressure.
    func drain(_ connection: WebSocketConnection)
    /// The peer sent a pong (the channel layer's `ping()` waits for one).
    func pong(_ connection: WebSocketConnection)
    /// Whether the close the handler is about to send (the answer to the peer's close, or a
    /// failure's) must wait: the application still holds messages received before it whose
    /// replies are not yet queued. The handler then waits for ``WebSocketHandler/applicationCaughtUp()``
    /// (bounded by closeTimeout).
    var holdsUnansweredMessages: Bool { get }
    /// The connection has ended (called once).
    func closed(_ connection: WebSocketConnection, _ result: CloseResult)
}

extension WebSocketApplication {
    /// Pongs need no answer by default.
    package func pong(_ connection: WebSocketConnection) {}
}

/// Frames sent from other threads, waiting for one hop to the event loop: sends are coalesced
/// (one `execute` and one flush per batch, not per message), and, with a capacity, counted so
/// that senders can wait for room (the channel layer's `sendChannelBuffer`).
package final class OutboundQueue: Sendable {
    private struct State {
        var frames: [(WebSocketOutbound, compress: Bool)] = []
        var hopScheduled = false
        var closed = false
        /// The event loop stopped taking frames (the socket is not writable).
        var paused = false
        var waiters: [CheckedContinuation<Bool, Never>] = []
    }

    private let state = NIOLockedValueBox(State())
    /// Frames that may wait before `waitForRoom` suspends.
    package let capacity: Int

    package init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Appends a frame, under one lock: `.queuedMustHop` when the caller must schedule the hop to
    /// the event loop, `.queued` when one is on its way (or the queue is paused), `.closed` when
    /// the connection is closed. `bounded`: refuse with `.full`, appending nothing, while
    /// `capacity` frames wait (a socket's send, which then waits for room). A close frame is the
    /// last frame taken: appends after it fail, and senders waiting for room resume with false.
    package func append(_ frame: WebSocketOutbound, compress: Bool = true, bounded: Bool = false) -> Admission {
        let (result, waiters) = state.withLockedValue { s -> (Admission, [CheckedContinuation<Bool, Never>]) in
            if s.closed { return (.closed, []) }
            if bounded && s.frames.count >= capacity { return (.full, []) }
            s.frames.append((frame, compress))
            var waiters: [CheckedContinuation<Bool, Never>] = []
            if case .close = frame {
                s.closed = true
                waiters = s.waiters
                s.waiters.removeAll()
            }
            if s.hopScheduled || s.paused { return (.queued, waiters) }
            s.hopScheduled = true
            return (.queuedMustHop, waiters)
        }
        for w in waiters { w.resume(returning: false) }
        return result
    }

    /// What ``append(_:compress:bounded:)`` did.
    package enum Admission {
        /// Appended; a hop to the event loop is already on its way (or the queue is paused).
        case queued
        /// Appended; the caller must schedule the hop to the event loop.
        case queuedMustHop
        /// Not appended: `capacity` frames wait (only when bounded).
        case full
        /// Not appended: the connection is closed.
        case closed
    }

    /// Suspends while `capacity` frames wait; false when the connection closed meanwhile.
    package nonisolated(nonsending) func waitForRoom() async -> Bool {
        let now: Bool? = state.withLockedValue { s in
            if s.closed { return false }
            return s.frames.count < capacity ? true : nil
        }
        if let now { return now }
        return await withCheckedContinuation { c in
            let resume: Bool? = state.withLockedValue { s in
                if s.closed { return false }
                if s.frames.count < capacity { return true }
                s.waiters.append(c)
                return nil
            }
            if let resume { c.resume(returning: resume) }
        }
    }

    /// On the event loop: takes what waits (all of it, or nothing while paused) into `batch`,
    /// which must be empty: the two arrays are swapped, so the queue keeps the caller's empty
    /// array and its capacity, and taking a batch allocates nothing.
    package func take(into batch: inout [(WebSocketOutbound, compress: Bool)]) {
        let waiters = state.withLockedValue { s -> [CheckedContinuation<Bool, Never>] in
            s.hopScheduled = false
            if s.paused || s.frames.isEmpty { return [] }
            swap(&batch, &s.frames)
            if s.waiters.isEmpty { return [] }
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume(returning: true) }
    }



    /// On the event loop: stop or resume taking frames (the socket's writability). Resuming
    /// returns whether frames wait (the caller drains them).
    package func setPaused(_ paused: Bool) -> Bool {
        state.withLockedValue { s in
            s.paused = paused
            return !paused && !s.frames.isEmpty
        }
    }

    /// On the event loop, when our close is about to go: ends the queue (later appends fail,
    /// waiting senders resume with false) and takes every frame appended before, paused or not,
    /// so that each send that was accepted goes out before the close frame.
    package func closeAndTake(into batch: inout [(WebSocketOutbound, compress: Bool)]) {
        let waiters = state.withLockedValue { s -> [CheckedContinuation<Bool, Never>] in
            s.closed = true
            s.hopScheduled = false
            swap(&batch, &s.frames)
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume(returning: false) }
    }

    /// Ends the queue: later appends fail, waiting senders resume with false, frames are dropped.
    package func close() {
        let waiters = state.withLockedValue { s -> [CheckedContinuation<Bool, Never>] in
            s.closed = true
            s.frames.removeAll()
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume(returning: false) }
    }
}
