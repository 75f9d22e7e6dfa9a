import NIOConcurrencyHelpers

/// The ordered inbox behind a socket's `receiver`, `errors`, `events` and `done`.
///
/// One pump task pushes what the connection produces; any number of readers take from it, each
/// through its own view: `receiver` takes the oldest message, `errors` the oldest error, `events`
/// the oldest entry of either kind and finally `.done`. An entry is delivered once, to whichever
/// view takes it first, like a value received from a Go channel.
///
/// Bounds: `push(message:)` suspends while `capacity` messages wait unread, so the pump stops
/// taking from the channel and the channel stops reading the socket. Errors never block the pump;
/// at most `capacity` of them are kept (the oldest is dropped), so a peer sending endless bad
/// messages cannot grow memory.
final class Inbox<Message: Sendable>: Sendable {
    enum Entry: Sendable {
        case message(Message)
        case error(WebSocketError)
    }

    enum Want: Sendable { case message, error, any }

    private struct Waiter {
        let id: UInt64
        let want: Want
        let continuation: CheckedContinuation<Entry?, Never>
    }

    private struct State {
        var entries: [Entry] = []
        var head = 0
        var messageCount = 0
        var errorCount = 0
        var finished: CloseCode? = nil
        var waiters: [Waiter] = []
        var doneWaiters: [(UInt64, CheckedContinuation<CloseCode, Never>)] = []
        var pusher: CheckedContinuation<Void, Never>? = nil
        var nextID: UInt64 = 0
        var doneDelivered = false
        var unbounded = false
    }

    private let state = NIOLockedValueBox(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    // MARK: Producer side (the pump)

    /// Adds a message, suspending while `capacity` messages wait unread.
    func push(message: Message) async {
        while true {
            let mustWait: Bool = state.withLockedValue { s in
                s.messageCount >= capacity && s.finished == nil && !s.unbounded
            }
            if !mustWait { break }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { s -> Bool in
                    if s.messageCount < capacity || s.finished != nil || s.unbounded { return true }
                    s.pusher = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        }
        deliver(.message(message))
    }

    /// Stops `push(message:)` from waiting: called when the channel has closed, so the pump can
    /// drain what the channel still holds (bounded by its watermark) and learn the close code.
    /// Messages already accepted stay readable.
    func stopBackpressure() {
        let p = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            s.unbounded = true
            let p = s.pusher
            s.pusher = nil
            return p
        }
        p?.resume()
    }

    /// Adds an error; never suspends.
    func push(error: WebSocketError) { deliver(.error(error)) }

    /// Ends the inbox with the connection's close code; waiting readers get what is left, then nil.
    func finish(_ code: CloseCode) {
        let (waiters, doneWaiters, pusher) = state.withLockedValue { s -> ([Waiter], [(UInt64, CheckedContinuation<CloseCode, Never>)], CheckedContinuation<Void, Never>?) in
            guard s.finished == nil else { return ([], [], nil) }
            s.finished = code
            // Readers still waiting now can only be waiting for entries that will never come.
            let w = s.waiters
            s.waiters = []
            let d = s.doneWaiters
            s.doneWaiters = []
            let p = s.pusher
            s.pusher = nil
            return (w, d, p)
        }
        for w in waiters { w.continuation.resume(returning: nil) }
        for (_, d) in doneWaiters { d.resume(returning: code) }
        pusher?.resume()
    }

    private func deliver(_ entry: Entry) {
        let waiter: Waiter? = state.withLockedValue { s in
            guard s.finished == nil else { return nil }
            if let i = s.waiters.firstIndex(where: { $0.want == .any || ($0.want == .message) == entry.isMessage }) {
                return s.waiters.remove(at: i)
            }
            if !entry.isMessage && s.errorCount >= capacity {
                // Drop the oldest error to stay bounded.
                if let i = s.entries[s.head...].firstIndex(where: { !$0.isMessage }) {
                    s.entries.remove(at: i)
                    s.errorCount -= 1
                }
            }
            s.entries.append(entry)
            if entry.isMessage { s.messageCount += 1 } else { s.errorCount += 1 }
            return nil
        }
        waiter?.continuation.resume(returning: entry)
    }

    // MARK: Consumer side

    /// Takes the oldest entry of the wanted kind, waiting for one; nil once the inbox is finished
    /// and holds none. Cancellation ends the wait with nil.
    func take(_ want: Want) async -> Entry? {
        switch takeNow(want) {
        case .entry(let e): return e
        case .finished: return nil
        case .empty: break
        }
        let id = state.withLockedValue { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Entry?, Never>) in
                var pusher: CheckedContinuation<Void, Never>? = nil
                let immediate: Entry?? = state.withLockedValue { s in
                    if let e = Self.takeLocked(&s, want) {
                        pusher = Self.wakePusherLocked(&s, capacity: capacity)
                        return .some(e)
                    }
                    if s.finished != nil || Task.isCancelled { return .some(nil) }
                    s.waiters.append(Waiter(id: id, want: want, continuation: c))
                    return .none
                }
                pusher?.resume()
                if let immediate { c.resume(returning: immediate) }
            }
        } onCancel: {
            let w = state.withLockedValue { s -> Waiter? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i)
            }
            w?.continuation.resume(returning: nil)
        }
    }

    private enum TakeResult { case entry(Entry), finished, empty }

    private func takeNow(_ want: Want) -> TakeResult {
        var pusher: CheckedContinuation<Void, Never>? = nil
        let r: TakeResult = state.withLockedValue { s in
            if let e = Self.takeLocked(&s, want) {
                pusher = Self.wakePusherLocked(&s, capacity: capacity)
                return .entry(e)
            }
            return s.finished != nil ? .finished : .empty
        }
        pusher?.resume()
        return r
    }

    private static func wakePusherLocked(_ s: inout State, capacity: Int) -> CheckedContinuation<Void, Never>? {
        guard s.messageCount < capacity, let p = s.pusher else { return nil }
        s.pusher = nil
        return p
    }

    private static func takeLocked(_ s: inout State, _ want: Want) -> Entry? {
        guard s.head < s.entries.count else { return nil }
        let i: Int?
        switch want {
        case .any: i = s.head
        case .message: i = s.entries[s.head...].firstIndex(where: { $0.isMessage })
        case .error: i = s.entries[s.head...].firstIndex(where: { !$0.isMessage })
        }
        guard let i else { return nil }
        let e = s.entries[i]
        if i == s.head {
            s.head += 1
            if s.head > 64 && s.head * 2 > s.entries.count {
                s.entries.removeFirst(s.head)
                s.head = 0
            }
        } else {
            s.entries.remove(at: i)
        }
        if e.isMessage { s.messageCount -= 1 } else { s.errorCount -= 1 }
        return e
    }

    /// Once per inbox, for `events`: the close code when finished and drained of entries.
    func takeDone() -> CloseCode? {
        state.withLockedValue { s in
            guard let code = s.finished, s.head == s.entries.count, !s.doneDelivered else { return nil }
            s.doneDelivered = true
            return code
        }
    }

    /// Waits until the inbox is finished and returns the close code.
    func waitDone() async -> CloseCode {
        if let code = state.withLockedValue({ $0.finished }) { return code }
        let id = state.withLockedValue { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<CloseCode, Never>) in
                let now: CloseCode? = state.withLockedValue { s in
                    if let code = s.finished { return code }
                    if Task.isCancelled { return .abnormalClosure }
                    s.doneWaiters.append((id, c))
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let c = state.withLockedValue { s -> CheckedContinuation<CloseCode, Never>? in
                guard let i = s.doneWaiters.firstIndex(where: { $0.0 == id }) else { return nil }
                return s.doneWaiters.remove(at: i).1
            }
            c?.resume(returning: .abnormalClosure)
        }
    }

    /// Whether the inbox has finished (the connection is closed).
    var isFinished: Bool { state.withLockedValue { $0.finished != nil } }
}

extension Inbox.Entry {
    var isMessage: Bool {
        if case .message = self { return true }
        return false
    }
}
