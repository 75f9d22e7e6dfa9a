import NIOConcurrencyHelpers
import NIOCore
import SocketsCore

/// The ordered inbox behind a socket's `receiver`, `errors`, `events` and `done`.
///
/// Continuations are unsafe ones (no allocation per wait): each is stored once, under the lock,
/// and resumed exactly once, by whoever removes it from the state.
///
/// The connection's event loop pushes what the connection produces, directly (no task between);
/// any number of readers take from it, each
/// through its own view: `receiver` takes the oldest message, `errors` the oldest error, `events`
/// the oldest entry of either kind and finally `.done`. An entry is delivered once, to whichever
/// view takes it first, like a value received from a Go channel.
///
/// Bounds: when `capacity` messages wait unread, `push(message:)` tells the producer (the
/// connection's event loop) to stop reading the socket, and the inbox resumes it (through the
/// connection's sender) once readers took half of them. Errors never stop the producer; at most
/// `capacity` of them are kept (the oldest is dropped), so a peer sending endless bad messages
/// cannot grow memory.
///
/// Not generic: a message is held as `any Sendable` (inline for values of up to three words, such
/// as `WebSocketMessage`, `String` or `[UInt8]`) and cast back to the socket's type by the reader.
/// The socket's message type is only known in the application's module, so generic code here runs
/// unspecialized, and every use of a generic type (the entry, its array, the tuples the lock
/// returns) looked its metadata up at run time: 20% of the server's CPU in a profile of the
/// 32-byte echo (`perf record -e cpu-clock -g`, W2).
@usableFromInline
final class Inbox: Sendable {
    /// A message (of the socket's type) or a `WebSocketError`. A struct with its kind stored
    /// apart, not an enum: telling an enum's case apart copied the entry first (it holds an
    /// existential), a retain and a release per entry looked at.
    @usableFromInline
    struct Entry: Sendable {
        let isMessage: Bool
        /// The message, or the `WebSocketError`.
        let value: any Sendable

        static func message(_ message: consuming any Sendable) -> Entry { Entry(isMessage: true, value: message) }
        static func error(_ error: WebSocketError) -> Entry { Entry(isMessage: false, value: error) }
    }

    @usableFromInline
    enum Want: Sendable { case message, error, any }

    private struct Waiter {
        let id: UInt64
        let want: Want
        let continuation: UnsafeContinuation<Entry?, Never>
    }

    /// The readers waiting, oldest first: the first inline (one reader waiting is the idle
    /// connection's state, and an array would be an allocation per connection), more after it.
    private struct Waiters {
        private var first: Waiter?
        private var rest: [Waiter] = []

        mutating func append(_ waiter: Waiter) {
            if first == nil { first = waiter } else { rest.append(waiter) }
        }

        /// Removes and returns the oldest waiter that `matches`.
        mutating func removeFirst(where matches: (Waiter) -> Bool) -> Waiter? {
            guard let head = first else { return nil }
            if matches(head) {
                first = rest.isEmpty ? nil : rest.removeFirst()
                return head
            }
            guard let i = rest.firstIndex(where: matches) else { return nil }
            return rest.remove(at: i)
        }

        /// Removes and returns every waiter, oldest first.
        mutating func removeAll() -> [Waiter] {
            guard let head = first else { return [] }
            defer { self = Waiters() }
            return [head] + rest
        }
    }

    private struct State {
        var entries: [Entry] = []
        var head = 0
        var messageCount = 0
        var errorCount = 0
        var finished: CloseResult? = nil
        var waiters = Waiters()
        var doneWaiters: [(UInt64, UnsafeContinuation<CloseResult, Never>)] = []
        var nextID: UInt64 = 0
        var doneDelivered = false
        /// The producer stopped reading the socket because `capacity` messages wait.
        var producerPaused = false
        /// A message was taken and the taker has not asked for the next entry yet (its replies
        /// may still be on their way).
        var answering = false
        /// The connection's close waits until the messages before it are answered.
        var closeHeld = false
        /// The socket's pings waiting for a pong (under the same lock: no allocation of their own).
        var pings = PingSlots()
        /// The connection's own task while it runs the handler (``Inbox/claimOwner()``), or 0.
        var owner: UInt = 0
    }

    private let state = NIOLockedValueBox(State())
    let capacity: Int
    /// The connection's sender (the socket sends through it too): told, from any thread, when
    /// messages were taken after the producer paused (`resumeReading`) and when a held close may
    /// go because every message before it is answered (`caughtUp`). Held as a value, not in
    /// closures: a closure context per callback was memory per connection.
    let sender: WebSocketSender

    init(capacity: Int, sender: WebSocketSender) {
        self.capacity = max(1, capacity)
        self.sender = sender
    }

    private func onRoom() { sender.resumeReading() }
    private func onCaughtUp() { sender.caughtUp() }

    /// The socket's send: `.tooBig` for a message over `maxMessageSize`, else queues `frame` if
    /// the connection's send queue has room (`.queued`), or `.full` (``waitForRoom()``, then
    /// again) or `.closed`. Synchronous and here, where `sender` is a stored property: in the
    /// socket's async `send` the sender was copied (a retain and a release of each of its five
    /// references, 4% of the server's CPU at 16 messages in flight).
    @inline(never)
    func enqueueIfRoom(_ frame: WebSocketOutbound) -> SendAdmission {
        switch frame {
        case .text(let b), .binary(let b), .uncompressed(.text(let b)), .uncompressed(.binary(let b)):
            if b.readableBytes > sender.maxMessageSize { return .tooBig }
        case .ping, .close:
            break
        }
        switch sender.enqueue(frame, compress: true, bounded: true) {
        case .queued, .queuedMustHop: return .queued
        case .full: return .full
        case .closed: return .closed
        }
    }

    /// What ``enqueueIfRoom(_:)`` did.
    enum SendAdmission { case queued, full, closed, tooBig }

    /// Suspends until the connection's send queue has room; false once it is closed.
    nonisolated(nonsending) func waitForRoom() async -> Bool { await sender.waitForRoom() }

    // MARK: Producer side (the connection's event loop)

    /// Adds a message; never suspends. Returns true when `capacity` messages now wait unread: the
    /// producer (the connection's handler) holds what follows itself, up to one maxMessageSize,
    /// until `onRoom` is called, and stops reading the socket once that is held.
    func push(message: consuming any Sendable) -> Bool {
        deliver(.message(message))
    }

    /// Whether some message received so far is not answered yet: waiting unread, or taken by a
    /// reader that has not asked for the next entry.
    var holdsUnanswered: Bool { state.withLockedValue { $0.messageCount > 0 || $0.answering } }

    /// Holds the connection's close until every message before it is answered (`onCaughtUp`).
    func holdClose() {
        let now = state.withLockedValue { s -> Bool in
            if s.messageCount == 0 && !s.answering { return true }
            s.closeHeld = true
            return false
        }
        if now { onCaughtUp() }
    }

    /// The reader (the route's handler) has ended: nothing more will be answered.
    func readerEnded() {
        let fire = state.withLockedValue { s -> Bool in
            s.answering = false
            s.owner = 0
            defer { s.closeHeld = false }
            return s.closeHeld
        }
        if fire { onCaughtUp() }
    }

    /// Adds an error; never suspends.
    func push(error: WebSocketError) { _ = deliver(.error(error)) }

    /// Ends the inbox with how the connection ended; waiting readers get what is left, then nil.
    func finish(_ code: CloseResult) {
        let (waiters, doneWaiters) = state.withLockedValue { s -> ([Waiter], [(UInt64, UnsafeContinuation<CloseResult, Never>)]) in
            guard s.finished == nil else { return ([], []) }
            s.finished = code
            // Readers still waiting now can only be waiting for entries that will never come.
            let w = s.waiters.removeAll()
            let d = s.doneWaiters
            s.doneWaiters = []
            return (w, d)
        }
        for w in waiters { w.continuation.resume(returning: nil) }
        for (_, d) in doneWaiters { d.resume(returning: code) }
    }

    // The entry is moved, not copied, on its way to a reader or into `entries` (each copy of a
    // message is a retain and a release: a quarter of the channel server's CPU went to
    // swift_retain/release in a W2 profile, the entries' copies the largest single part).
    // One lock per entry. Returns, for a message, whether `capacity` messages now wait unread.
    private func deliver(_ entry: consuming Entry) -> Bool {
        let isMessage = entry.isMessage
        var slot = Optional(entry)
        var full = false
        let waiter: Waiter? = state.withLockedValue { s in
            guard s.finished == nil else { return nil }
            if let w = s.waiters.removeFirst(where: { $0.want == .any || ($0.want == .message) == isMessage }) {
                if isMessage { s.answering = true }
                return w
            }
            if !isMessage && s.errorCount >= capacity {
                // Drop the oldest error to stay bounded.
                if let i = s.entries[s.head...].firstIndex(where: { !$0.isMessage }) {
                    s.entries.remove(at: i)
                    s.errorCount -= 1
                }
            }
            s.entries.append(slot.take()!)
            if isMessage {
                s.messageCount += 1
                if s.messageCount >= capacity {
                    s.producerPaused = true
                    full = true
                }
            } else {
                s.errorCount += 1
            }
            return nil
        }
        if let waiter { waiter.continuation.resume(returning: slot.take()!) }
        return full
    }

    // MARK: Consumer side

    /// Takes the oldest entry of the wanted kind if one waits, without suspending: the first half
    /// of a read (`SocketSequence`'s iterator inlines the call, so a message that waits already
    /// reaches the reader with no executor switch). Returns nil when none waits: `miss` then
    /// says whether the inbox is over (nothing more will come) or how the reader must wait.
    ///
    /// One lock per call (this is every message's path): the reader has answered what it took
    /// before (a held close may go now), then the oldest entry it wants.
    func poll(_ want: Want, miss: inout Miss) -> Entry? {
        var caughtUp = false
        var room = false
        var result = Miss.wait
        let entry: Entry? = state.withLockedValue { s in
            s.answering = false
            if s.closeHeld && s.messageCount == 0 {
                s.closeHeld = false
                caughtUp = true
            }
            if let e = Self.takeLocked(&s, want) {
                room = Self.roomLocked(&s, capacity: capacity)
                return e
            }
            if s.finished != nil {
                result = .finished
            } else if s.owner != 0 && s.owner == Self.currentTask {
                result = .waitAsOwner
            }
            return nil
        }
        if caughtUp { onCaughtUp() }
        if room { onRoom() }
        miss = result
        return entry
    }

    /// Why ``poll(_:miss:)`` returned no entry.
    enum Miss {
        /// The inbox is over: nothing more will come.
        case finished
        /// The reader must wait.
        case wait
        /// The reader must wait, and it is the connection's own task (``claimOwner()``).
        case waitAsOwner
    }

    /// Waits for the oldest entry of the wanted kind (after ``poll(_:miss:)`` found none), with a
    /// cancellation handler: nil once the inbox is finished and holds none, or when the waiting
    /// task is cancelled.
    ///
    /// The connection's own task (``claimOwner()``, `Miss.waitAsOwner`) does not wait here but
    /// through ``register(_:id:_:)`` alone (`SocketSequence`'s iterator): its handle is never
    /// given out, so nothing but the library can cancel it while it waits, and the library ends
    /// its connection first, which ends the wait (`finish`). That saves the handler's status
    /// record and, with the continuation in the reader's own loop, five of the six executor
    /// switches a waiting reader's resume went through (counted with a uprobe on
    /// `swift_task_switch`). Any other task (a child task, a `Task {}`) may be cancelled while it
    /// waits, and waits here.
    nonisolated(nonsending) func wait(_ want: Want) async -> Entry? {
        let id = state.withLockedValue { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Entry?, Never>) in
                register(want, id: id, c)
            }
        } onCancel: {
            let w = state.withLockedValue { s -> Waiter? in
                s.waiters.removeFirst(where: { $0.id == id })
            }
            w?.continuation.resume(returning: nil)
        }
    }

    /// Under the lock: an entry that came meanwhile, the end, a cancellation, or the reader
    /// waits for `deliver` (or `finish`) to resume it. `id` is what a cancellation handler finds
    /// the waiter by (0 for the connection's own task, which has none).
    @usableFromInline
    func register(_ want: Want, id: UInt64, _ c: UnsafeContinuation<Entry?, Never>) {
        var room = false
        let immediate: Entry?? = state.withLockedValue { s in
            if let e = Self.takeLocked(&s, want) {
                room = Self.roomLocked(&s, capacity: capacity)
                return .some(e)
            }
            if s.finished != nil || Task.isCancelled { return .some(nil) }
            s.waiters.append(Waiter(id: id, want: want, continuation: c))
            return .none
        }
        if room { onRoom() }
        if let immediate { c.resume(returning: immediate) }
    }

    /// The running task, as a number to compare (0 outside a task).
    private static var currentTask: UInt {
        withUnsafeCurrentTask { task in
            guard let task else { return 0 }
            return unsafeBitCast(task, to: UInt.self)
        }
    }

    /// Called by the connection's own task (the one that runs the route's handler) before the
    /// handler starts: its waits need no cancellation handler (see ``wait(_:)``). Given up in
    /// ``readerEnded()``, while the task still runs, so a task made later at the same address is
    /// never taken for it.
    func claimOwner() {
        let task = Self.currentTask
        state.withLockedValue { $0.owner = task }
    }

    /// Whether the producer paused and there is room again (half the capacity free, so that
    /// resuming is one hop per several messages, not per message).
    private static func roomLocked(_ s: inout State, capacity: Int) -> Bool {
        guard s.producerPaused, s.messageCount <= capacity / 2 else { return false }
        s.producerPaused = false
        return true
    }

    private static func takeLocked(_ s: inout State, _ want: Want) -> Entry? {
        let head = s.head
        guard head < s.entries.count else { return nil }
        // Looked at in place (an entry read through the array's subscript was a copy: a retain
        // and a release of the message's storage).
        let found: Int? = s.entries.withUnsafeBufferPointer { b in
            switch want {
            case .any: return head
            case .message: return (head..<b.count).first { b[$0].isMessage }
            case .error: return (head..<b.count).first { !b[$0].isMessage }
            }
        }
        guard let i = found else { return nil }
        let e: Entry
        if i == head {
            // Moved out, a vacated entry (no reference) left in its place.
            e = s.entries.withUnsafeMutableBufferPointer { b in
                let p = b.baseAddress! + i
                let taken = p.move()
                p.initialize(to: Self.vacated)
                return taken
            }
            s.head += 1
            if s.head > 64 && s.head * 2 > s.entries.count {
                s.entries.removeFirst(s.head)
                s.head = 0
            }
        } else {
            e = s.entries.remove(at: i)
        }
        if e.isMessage {
            s.messageCount -= 1
            s.answering = true
        } else {
            s.errorCount -= 1
        }
        return e
    }

    /// What a taken entry's slot holds until the array is compacted: nothing to retain.
    private static let vacated = Entry(isMessage: false, value: 0)

    /// Once per inbox, for `events`: the close result when finished and drained of entries.
    func takeDone() -> CloseResult? {
        state.withLockedValue { s in
            guard let code = s.finished, s.head == s.entries.count, !s.doneDelivered else { return nil }
            s.doneDelivered = true
            return code
        }
    }

    /// Waits until the inbox is finished and returns how the connection ended.
    func waitDone() async -> CloseResult {
        if let code = state.withLockedValue({ $0.finished }) { return code }
        let id = state.withLockedValue { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<CloseResult, Never>) in
                let now: CloseResult? = state.withLockedValue { s in
                    if let code = s.finished { return code }
                    if Task.isCancelled { return Self.cancelled }
                    s.doneWaiters.append((id, c))
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let c = state.withLockedValue { s -> UnsafeContinuation<CloseResult, Never>? in
                guard let i = s.doneWaiters.firstIndex(where: { $0.0 == id }) else { return nil }
                return s.doneWaiters.remove(at: i).1
            }
            c?.resume(returning: Self.cancelled)
        }
    }

    /// What a wait for the end that was cancelled returns.
    static var cancelled: CloseResult { CloseResult(code: .abnormalClosure, reason: "cancelled") }

    /// Whether the inbox has finished (the connection is closed).
    var isFinished: Bool { state.withLockedValue { $0.finished != nil } }
}

/// The pings a socket waits answers for: each registered, then waited for once, and ended once,
/// by a pong (all at once), the timeout, or the end of the connection. Kept in the inbox's state,
/// under its lock; empty (no storage) while the socket sends no ping.
struct PingSlots {
    enum Slot {
        case pending
        case waiting(CheckedContinuation<Void, any Error>)
        case ended((any Error)?)
    }
    /// By id (from the inbox's `nextID`, which the waits of readers draw from too).
    var slots: [UInt64: Slot] = [:]
}

extension Inbox {
    func registerPing() -> UInt64 {
        state.withLockedValue { s in
            s.nextID += 1
            s.pings.slots[s.nextID] = .pending
            return s.nextID
        }
    }

    func waitPing(_ id: UInt64) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let ended: Result<Void, any Error>? = state.withLockedValue { s in
                switch s.pings.slots[id] {
                case .ended(let error)?:
                    s.pings.slots[id] = nil
                    return error.map { .failure($0) } ?? .success(())
                case .pending?:
                    s.pings.slots[id] = .waiting(c)
                    return nil
                case .waiting?, nil:
                    return .failure(WebSocketError.closed)
                }
            }
            if let ended { c.resume(with: ended) }
        }
    }

    func failPing(_ id: UInt64, _ error: any Error) { endPings([id], error) }
    func answerPings() { endPings(nil, nil) }
    func failPings(_ error: any Error) { endPings(nil, error) }

    private func endPings(_ ids: [UInt64]?, _ error: (any Error)?) {
        let resume = state.withLockedValue { s -> [CheckedContinuation<Void, any Error>] in
            guard !s.pings.slots.isEmpty else { return [] }
            var out: [CheckedContinuation<Void, any Error>] = []
            for id in ids ?? Array(s.pings.slots.keys) {
                switch s.pings.slots[id] {
                case .pending?: s.pings.slots[id] = .ended(error)
                case .waiting(let c)?:
                    s.pings.slots[id] = nil
                    out.append(c)
                case .ended?, nil: break
                }
            }
            return out
        }
        for c in resume {
            if let error { c.resume(throwing: error) } else { c.resume() }
        }
    }
}
