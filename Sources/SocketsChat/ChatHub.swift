import Sockets
import Synchronization

/// The chat's one message type, the reference example's: `{"typ": ..., "from": ..., "text": ...}`.
///
/// - `typ`: `"status"` for join and leave notices, `"message"` for chat text.
/// - `from`: the sender's client name. The server always sets it (and `typ`) itself, so a client
///   can neither speak for someone else nor forge a status notice.
/// - `text`: the chat text, or `"joined"` / `"left"` in a status notice.
///
/// Decoding tolerates missing fields (they become `""`), as Go's `json.Unmarshal` into the
/// reference's struct does: a client sends `{"text": "hi"}` and the server fills in the rest.
struct Message: Codable, Sendable, Equatable {
    var typ: String
    var from: String
    var text: String

    init(typ: String, from: String, text: String) {
        self.typ = typ
        self.from = from
        self.text = text
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        typ = try c.decodeIfPresent(String.self, forKey: .typ) ?? ""
        from = try c.decodeIfPresent(String.self, forKey: .from) ?? ""
        text = try c.decodeIfPresent(String.self, forKey: .text) ?? ""
    }

    static func status(_ name: String, _ text: String) -> Message { Message(typ: "status", from: name, text: text) }
}

/// The rooms: who is in each, and delivery to them.
///
/// Design, and why:
/// - **One registry under one lock** (`Mutex`), not an actor: join, leave and broadcast are short
///   and never suspend, so a handler calls them synchronously, without a hop to another executor
///   per message. Holding the lock while a broadcast is handed out gives every room a single
///   order of events, so each client sees joins, messages and leaves in the same order as
///   everyone else.
/// - **Encode once.** A broadcast is a ``PreparedMessage``: the JSON is encoded one time and the
///   same bytes go to every recipient (only the 2-10 byte frame header is per connection).
/// - **A slow client cannot stall the room.** Nobody's socket is written inside the lock. Each
///   member has its own bounded ``Outbox`` (at most `queueCapacity` messages) drained by a writer
///   task of its own, which awaits that socket's `send` (and so its TCP backpressure). Handing a
///   message to an outbox never waits; the writer takes everything queued at once, so a busy
///   room costs one wake-up per batch rather than per message. When an outbox is full the
///   client is not keeping up: rather than grow memory without bound or silently drop some of
///   its messages, the hub drops it from the room at once (announcing its leave) and disconnects it
///   with 1008 ("too slow"). Memory per client is bounded by `queueCapacity` messages plus the
///   socket's own `sendChannelBuffer`.
final class ChatHub: Sendable {
    /// One connected client as the hub sees it.
    struct Member: Sendable {
        let id: UInt64
        let name: String
        let room: String
        let outbox: Outbox
        /// Announced to the room when the member leaves or is dropped.
        let leaveNotice: PreparedMessage
        /// Disconnects the client; called (outside the lock) when its outbox overflows.
        let kick: @Sendable () -> Void
    }

    private typealias Rooms = [String: [UInt64: Member]]
    private let rooms = Mutex<Rooms>([:])
    private let ids = Atomic<UInt64>(0)
    /// The most messages one client may have waiting in its outbox. Queued messages are
    /// references to buffers shared by the whole room, so a long queue costs little memory.
    let queueCapacity: Int

    init(queueCapacity: Int) {
        self.queueCapacity = max(1, queueCapacity)
    }

    /// Adds a client to `room` and announces it (`joinNotice`) to the others there.
    ///
    /// - Returns: the member, for ``broadcast(_:from:)`` and ``leave(_:)``; the caller drains its
    ///   ``Member/outbox`` into the socket.
    func join(
        room: String, name: String, joinNotice: PreparedMessage, leaveNotice: PreparedMessage,
        kick: @escaping @Sendable () -> Void
    ) -> Member {
        let member = Member(
            id: ids.add(1, ordering: .relaxed).newValue, name: name, room: room, outbox: Outbox(capacity: queueCapacity),
            leaveNotice: leaveNotice, kick: kick
        )
        let dropped = rooms.withLock { rooms -> [Member] in
            let dropped = Self.deliver(joinNotice, in: &rooms, room: room, except: member.id)
            rooms[room, default: [:]][member.id] = member
            return dropped
        }
        drop(dropped)
        return member
    }

    /// Hands `message` to every other member of the sender's room.
    func broadcast(_ message: PreparedMessage, from member: Member) {
        drop(rooms.withLock { Self.deliver(message, in: &$0, room: member.room, except: member.id) })
    }

    /// Removes a member, ends its outbox (its writer then stops once the queue is sent), and
    /// announces the leave. Idempotent: a member already dropped is not announced again.
    func leave(_ member: Member) {
        member.outbox.finish()
        let dropped = rooms.withLock { rooms -> [Member] in
            guard rooms[member.room]?.removeValue(forKey: member.id) != nil else { return [] }
            return Self.deliver(member.leaveNotice, in: &rooms, room: member.room, except: member.id)
        }
        drop(dropped)
    }

    /// Offers `message` to every member of `room` but one. Never waits: a bounded outbox either
    /// takes the message or says it is full. A member whose outbox is full is removed from the
    /// room right here, under the lock, so it is dropped exactly once.
    private static func deliver(_ message: PreparedMessage, in rooms: inout Rooms, room: String, except id: UInt64) -> [Member] {
        guard let members = rooms[room] else { return [] }
        var overflowed: [Member] = []
        for m in members.values where m.id != id {
            if m.outbox.push(message) == .full { overflowed.append(m) }
        }
        for m in overflowed { rooms[room]?.removeValue(forKey: m.id) }
        if rooms[room]?.isEmpty == true { rooms[room] = nil }
        return overflowed
    }

    /// Disconnects members that could not keep up and tells their rooms they left (which may in
    /// turn overflow someone else's outbox).
    private func drop(_ members: [Member]) {
        var work = members
        while let m = work.popLast() {
            // No more messages for it; what is queued still goes out if the socket drains.
            m.outbox.finish()
            m.kick()
            work += rooms.withLock { Self.deliver(m.leaveNotice, in: &$0, room: m.room, except: m.id) }
        }
    }
}

/// One client's queue of messages to send: many producers (whoever broadcasts), one consumer
/// (the client's writer task), bounded. `take` hands over everything queued at once.
final class Outbox: Sendable {
    enum PushResult: Equatable {
        case queued
        /// `capacity` messages are waiting: the message was not queued.
        case full
        /// The outbox was finished: the message was not queued.
        case finished
    }

    private struct State {
        var queue: [PreparedMessage] = []
        var finished = false
        var waiter: CheckedContinuation<[PreparedMessage]?, Never>?
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Queues a message, or refuses it when full or finished. Never waits.
    func push(_ message: PreparedMessage) -> PushResult {
        let (result, waiter) = state.withLock { s -> (PushResult, CheckedContinuation<[PreparedMessage]?, Never>?) in
            if s.finished { return (.finished, nil) }
            if s.queue.count >= capacity { return (.full, nil) }
            if let w = s.waiter {
                // The consumer is waiting, so the queue is empty: hand the message straight over.
                s.waiter = nil
                return (.queued, w)
            }
            s.queue.append(message)
            return (.queued, nil)
        }
        waiter?.resume(returning: [message])
        return result
    }

    /// No more messages will be queued; what is queued can still be taken.
    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<[PreparedMessage]?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Everything queued (at least one message), waiting if there is nothing yet; nil once the
    /// outbox is finished and empty, or the task is cancelled. One consumer at a time.
    func take() async -> [PreparedMessage]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<[PreparedMessage]?, Never>) in
                let now: [PreparedMessage]?? = state.withLock { s in
                    if !s.queue.isEmpty {
                        defer { s.queue = [] }
                        return .some(s.queue)
                    }
                    if s.finished || Task.isCancelled { return .some(nil) }
                    s.waiter = c
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            finish()
        }
    }
}

/// Room and client names: 1 to 64 characters, no control characters (they would garble the
/// pages and the logs). Anything else, `/` and emoji included, is fine: names travel
/// percent-encoded in the URL and as JSON strings.
func isValidName(_ s: String) -> Bool {
    !s.isEmpty && s.count <= 64 && !s.unicodeScalars.contains { $0.properties.generalCategory == .control }
}
