public import Logging
public import NIOCore
import Synchronization

/// What a ``Hub`` does with a subscriber whose outbox is full (it is not reading as fast as the
/// topic publishes).
public enum SlowConsumerPolicy: Sendable, Equatable {
    /// Unsubscribes it from every topic at once (announcing its presence leaves) and closes its
    /// connection with this code, reason "too slow: message queue full". `.disconnect(.policyViolation)`
    /// (1008) is the default: the subscriber misses nothing silently, and knows it.
    case disconnect(CloseCode)
    /// Drops the oldest queued message to make room for the new one: for state updates where only
    /// the latest matters (prices, positions).
    case dropOldest
    /// Drops the new message: the subscriber keeps what it had queued.
    case dropNewest
}

/// Something a ``Hub`` delivers to: a ``Socket`` (of any message type), or a test double.
///
/// The hub gives each subscriber one bounded outbox and one writer task that awaits ``send(_:)``
/// for each queued message, so a subscriber is written at its own pace and never under the hub's
/// lock. Its subscriptions end when ``done`` returns.
public protocol HubSubscriber: AnyObject, Sendable {
    /// Sends one prepared message; suspends while the subscriber's own send buffer is full.
    ///
    /// - Throws: when the subscriber cannot take any more (its connection closed); the hub then
    ///   unsubscribes it.
    func send(_ prepared: PreparedMessage) async throws
    /// Closes the subscriber's connection with `code` (used by ``SlowConsumerPolicy/disconnect(_:)``).
    func disconnect(_ code: CloseCode, reason: String) async
    /// Returns when the subscriber's connection has ended, with how it ended.
    var done: CloseResult { get async }
}

extension Socket: HubSubscriber {}

extension PreparedMessage {
    /// A text message prepared from a string, for publishing without a socket at hand.
    public static func text(_ text: String) -> PreparedMessage {
        PreparedMessage(frame: .text(ByteBuffer(string: text)))
    }

    /// A binary message prepared from bytes, for publishing without a socket at hand.
    public static func binary(_ bytes: ByteBuffer) -> PreparedMessage {
        PreparedMessage(frame: .binary(bytes))
    }

    /// The frame's kind and payload, as an envelope carries them; nil for a control frame.
    var envelopeParts: (HubEnvelope.Kind, ByteBuffer)? {
        switch frame {
        case .text(let b), .uncompressed(.text(let b)): (.text, b)
        case .binary(let b), .uncompressed(.binary(let b)): (.binary, b)
        default: nil
        }
    }

    init?(kind: HubEnvelope.Kind, payload: ByteBuffer) {
        switch kind {
        case .text: self.init(frame: .text(payload))
        case .binary: self.init(frame: .binary(payload))
        default: return nil
        }
    }
}

/// A subscriber's presence in a topic: a name other members see in ``Hub/members(of:)``, and the
/// notices the hub delivers to the topic's other subscribers (on every instance) when it joins and
/// when it leaves, whatever the reason (unsubscribed, connection closed, dropped as too slow, its
/// instance gone).
public struct HubPresence: Sendable {
    /// The name shown in ``Hub/members(of:)``. Names need not be unique.
    public var name: String
    /// Delivered to the topic's other subscribers when this one joins, if set.
    public var joined: PreparedMessage?
    /// Delivered to the topic's other subscribers when this one leaves, if set.
    public var left: PreparedMessage?

    /// A presence.
    public init(name: String, joined: PreparedMessage? = nil, left: PreparedMessage? = nil) {
        self.name = name
        self.joined = joined
        self.left = left
    }
}

/// Counts since the hub started; see ``Hub/statistics``.
public struct HubStatistics: Sendable, Equatable {
    /// Calls of ``Hub/publish(_:to:excluding:)``.
    public var published = 0
    /// Messages handed to subscribers' outboxes (publishes, remote publishes and presence notices).
    public var delivered = 0
    /// Messages dropped by ``SlowConsumerPolicy/dropOldest``.
    public var droppedOldest = 0
    /// Messages dropped by ``SlowConsumerPolicy/dropNewest``.
    public var droppedNewest = 0
    /// Subscribers disconnected by ``SlowConsumerPolicy/disconnect(_:)``.
    public var disconnectedSlow = 0
    /// Publishes from other instances, through the backplane.
    public var receivedRemote = 0

    /// All zero.
    public init() {}
}

/// Topics with publish and subscribe, within one process or, with a ``HubBackplane``, across
/// instances.
///
/// ```swift
/// let hub = Hub()
/// app.get("/rooms/:name", Sockets.json(Message.self)) { params, socket in
///     hub.subscribe(socket, to: params["name"]!)
///     for await message in socket.receiver {
///         hub.publish(try socket.prepare(message), to: params["name"]!, excluding: socket)
///     }
/// }   // the subscription ends with the socket
/// ```
///
/// - **Encode once.** A publish is a ``PreparedMessage``: every subscriber gets the same payload
///   bytes; only the 2–10 byte frame header is written per connection.
/// - **A slow subscriber cannot stall a topic.** Publishing never waits and never writes a socket
///   under the lock: each subscriber has one bounded outbox (`outboxCapacity` messages, shared by
///   all its topics) drained by a writer task of its own at the socket's pace. When it is full,
///   the topic's ``SlowConsumerPolicy`` decides; every drop is counted in ``statistics`` and logged.
/// - **One order.** The registry is one lock: everyone in a topic sees the publishes made through
///   this hub, presence notices included, in the same order. Publishes from other instances arrive
///   in each instance's publish order.
/// - **Subscriptions end with the socket**, whatever ends it.
/// - **Across instances**, each publish is delivered locally at once and relayed by the backplane;
///   what the backplane guarantees is documented with it (`PostgresBackplane`). Call ``run()``
///   for as long as the hub serves.
///
/// The event-loop (callback) API can subscribe its connections through ``HubSubscriber`` too: its
/// `send` would append to the connection's output buffer on the loop.
public final class Hub: Sendable {
    private struct Subscriber {
        let subscriber: any HubSubscriber
        let outbox: HubOutbox
        /// Topic → its presence entry id, if it has a presence there.
        var topics: [String: UInt64?] = [:]
        var drops = 0
    }

    private struct LocalEntry {
        let topic: String
        let owner: ObjectIdentifier
        let presence: HubPresence
    }

    private struct RemoteEntry: Equatable {
        let topic: String
        let name: String
        let joined: HubPresenceCodec.Notice?
        let left: HubPresenceCodec.Notice?
    }

    private struct State {
        var subscribers: [ObjectIdentifier: Subscriber] = [:]
        var topics: [String: [ObjectIdentifier: HubOutbox]] = [:]
        var policies: [String: SlowConsumerPolicy] = [:]
        var local: [UInt64: LocalEntry] = [:]
        var remote: [String: [UInt64: RemoteEntry]] = [:]
        var nextEntry: UInt64 = 0
        var statistics = HubStatistics()

        func members(of topic: String) -> [String] {
            var names = local.values.filter { $0.topic == topic }.map(\.presence.name)
            for entries in remote.values {
                names += entries.values.filter { $0.topic == topic }.map(\.name)
            }
            return names.sorted()
        }
    }

    /// Side effects decided under the lock and carried out after it.
    private struct After {
        var disconnect: [(any HubSubscriber, HubOutbox, CloseCode)] = []
        var logs: [Logger.Message] = []
    }

    private let state = Mutex(State())
    private let logger: Logger
    /// The most messages one subscriber may have waiting. Queued messages are references to
    /// buffers shared by every subscriber, so a long queue costs little memory.
    public let outboxCapacity: Int
    /// The policy of topics without one of their own (``setPolicy(_:for:)``).
    public let defaultPolicy: SlowConsumerPolicy
    /// The backplane, if this hub spans instances.
    public let backplane: (any HubBackplane)?

    /// A hub.
    ///
    /// - Parameters:
    ///   - outboxCapacity: messages one subscriber may have waiting before its topic's
    ///     ``SlowConsumerPolicy`` applies (at least 1); default 1024.
    ///   - policy: the policy of topics without one of their own; default
    ///     `.disconnect(.policyViolation)` (1008).
    ///   - backplane: relays publishes to other instances; nil (the default) for one process.
    ///   - logger: drops, disconnections and backplane events are logged here.
    public init(
        outboxCapacity: Int = 1024, policy: SlowConsumerPolicy = .disconnect(.policyViolation),
        backplane: (any HubBackplane)? = nil, logger: Logger = Logger(label: "sockets.hub")
    ) {
        self.outboxCapacity = max(1, outboxCapacity)
        self.defaultPolicy = policy
        self.backplane = backplane
        self.logger = logger
    }

    // MARK: Subscribing

    /// Subscribes `subscriber` to `topic`; a second call for the same pair changes nothing.
    ///
    /// - Parameters:
    ///   - subscriber: who gets the topic's messages (a ``Socket``, or your own
    ///     ``HubSubscriber``).
    ///   - topic: the topic's name.
    ///   - presence: a name listed in ``members(of:)`` (on every instance), with notices for the
    ///     topic's other subscribers when it joins and leaves.
    ///   - welcome: makes a message for this subscriber alone from the topic's members at the
    ///     moment it joins (itself included): it is queued before anything published to the
    ///     topic afterwards, so a member list and the join and leave notices after it agree.
    ///     Called under the hub's lock: keep it short.
    /// - Returns: false when it was already subscribed to `topic` (`welcome` is then not called).
    @discardableResult
    public func subscribe(
        _ subscriber: some HubSubscriber, to topic: String, presence: HubPresence? = nil,
        welcome: (([String]) -> PreparedMessage?)? = nil
    ) -> Bool {
        let id = ObjectIdentifier(subscriber)
        var after = After()
        let (added, isNew, outbox) = state.withLock { s -> (Bool, Bool, HubOutbox) in
            var isNew = false
            if s.subscribers[id] == nil {
                s.subscribers[id] = Subscriber(subscriber: subscriber, outbox: HubOutbox(capacity: outboxCapacity))
                isNew = true
            }
            let outbox = s.subscribers[id]!.outbox
            guard s.subscribers[id]!.topics[topic] == nil else { return (false, isNew, outbox) }
            var entry: UInt64?
            if let presence {
                s.nextEntry += 1
                entry = s.nextEntry
                s.local[s.nextEntry] = LocalEntry(topic: topic, owner: id, presence: presence)
                if let joined = presence.joined {
                    deliver(joined, to: topic, except: id, in: &s, after: &after)
                }
                backplane?.relay(HubPresenceCodec.join(topic: topic, entry: s.nextEntry, presence: presence))
            }
            // Dropped while its own join was delivered? Then it is gone already.
            guard s.subscribers[id] != nil else { return (true, isNew, outbox) }
            s.subscribers[id]!.topics[topic] = .some(entry)
            s.topics[topic, default: [:]][id] = outbox
            if let message = welcome?(s.members(of: topic)) {
                _ = outbox.push(message, dropOldest: false)
            }
            return (true, isNew, outbox)
        }
        finish(after)
        if isNew { start(subscriber, outbox: outbox) }
        return added
    }

    /// Ends `subscriber`'s subscription to `topic` (announcing its presence leave); nothing
    /// happens when it was not subscribed.
    public func unsubscribe(_ subscriber: some HubSubscriber, from topic: String) {
        let id = ObjectIdentifier(subscriber)
        var after = After()
        state.withLock { s in
            guard let entry = s.subscribers[id]?.topics.removeValue(forKey: topic) else { return }
            removeFromTopic(id, topic: topic, entry: entry, in: &s, after: &after)
        }
        finish(after)
    }

    /// Sets the slow-consumer policy of one topic (instead of the hub's default).
    public func setPolicy(_ policy: SlowConsumerPolicy, for topic: String) {
        state.withLock { $0.policies[topic] = policy }
    }

    // MARK: Publishing

    /// Hands `message` to every subscriber of `topic` on this instance but `excluding`, and to the
    /// backplane for the other instances. Never waits.
    ///
    /// - Parameters:
    ///   - message: encoded once (``Socket/prepare(_:)`` or ``PreparedMessage/text(_:)``).
    ///   - topic: the topic's name.
    ///   - excluding: a subscriber not to deliver to (usually the sender).
    public func publish(_ message: PreparedMessage, to topic: String, excluding: (any HubSubscriber)? = nil) {
        var after = After()
        state.withLock { s in
            s.statistics.published += 1
            deliver(message, to: topic, except: excluding.map { ObjectIdentifier($0) }, in: &s, after: &after)
            if let backplane, let (kind, payload) = message.envelopeParts {
                backplane.relay(HubEnvelope(topic: topic, kind: kind, payload: payload))
            }
        }
        finish(after)
    }

    // MARK: Queries

    /// How many topics have at least one subscriber on this instance.
    public var topicCount: Int { state.withLock { $0.topics.count } }

    /// The topics with at least one subscriber on this instance, sorted.
    public var topics: [String] { state.withLock { $0.topics.keys.sorted() } }

    /// How many subscribers `topic` has on this instance.
    public func subscriberCount(of topic: String) -> Int { state.withLock { $0.topics[topic]?.count ?? 0 } }

    /// How many subscribers (connections) the hub has on this instance, in any topic.
    public var subscriberCount: Int { state.withLock { $0.subscribers.values.count { !$0.topics.isEmpty } } }

    /// The names present in `topic` on this instance and every instance the backplane has heard
    /// from, sorted (a name twice when two subscribers use it).
    public func members(of topic: String) -> [String] {
        state.withLock { $0.members(of: topic) }
    }

    /// Counts of publishes, deliveries and drops since the hub started.
    public var statistics: HubStatistics { state.withLock { $0.statistics } }

    // MARK: Running

    /// Runs the backplane until the calling task is cancelled; returns at once when there is none.
    ///
    /// - Throws: what the backplane's `run` throws (a configuration that cannot work).
    public func run() async throws {
        guard let backplane else { return }
        try await backplane.run { [weak self] event in self?.handle(event) }
    }

    /// One event from the backplane.
    func handle(_ event: HubBackplaneEvent) {
        var after = After()
        state.withLock { s in
            switch event {
            case .connected:
                // Tell the others (again) who is here, and ask them the same: either side may
                // have missed changes while we were disconnected.
                relaySnapshot(s)
                backplane?.relay(HubPresenceCodec.request())
            case .instanceAppeared:
                // A newcomer: tell it who is here.
                relaySnapshot(s)
            case .missed(let instance):
                after.logs.append("hub: publishes of instance \(instance) were lost; asking every instance for its members again")
                backplane?.relay(HubPresenceCodec.request())
            case .instanceGone(let instance):
                let gone = s.remote.removeValue(forKey: instance) ?? [:]
                for (_, e) in gone.sorted(by: { $0.key < $1.key }) {
                    if let left = e.left?.prepared { deliver(left, to: e.topic, except: nil, in: &s, after: &after) }
                }
                if !gone.isEmpty {
                    after.logs.append("hub: instance \(instance) is gone; \(gone.count) of its members left")
                }
            case .envelope(let envelope, let instance):
                if envelope.kind == .presence {
                    applyPresence(envelope, from: instance, in: &s, after: &after)
                } else if let message = PreparedMessage(kind: envelope.kind, payload: envelope.payload) {
                    s.statistics.receivedRemote += 1
                    deliver(message, to: envelope.topic, except: nil, in: &s, after: &after)
                }
            }
        }
        finish(after)
    }

    // MARK: Inside the lock

    /// Offers `message` to every subscriber of `topic` but one; applies the topic's policy to
    /// full outboxes. Subscribers to disconnect are removed right here, so each is dropped once.
    private func deliver(_ message: PreparedMessage, to topic: String, except: ObjectIdentifier?, in s: inout State, after: inout After) {
        guard let outboxes = s.topics[topic] else { return }
        let policy = s.policies[topic] ?? defaultPolicy
        var slow: [ObjectIdentifier] = []
        for (id, outbox) in outboxes where id != except {
            switch outbox.push(message, dropOldest: policy == .dropOldest) {
            case .queued:
                s.statistics.delivered += 1
            case .queuedDroppingOldest:
                s.statistics.delivered += 1
                s.statistics.droppedOldest += 1
                noteDrop(id, topic: topic, what: "oldest", in: &s, after: &after)
            case .full:
                if case .disconnect = policy {
                    slow.append(id)
                } else {
                    s.statistics.droppedNewest += 1
                    noteDrop(id, topic: topic, what: "newest", in: &s, after: &after)
                }
            case .finished:
                break
            }
        }
        if case .disconnect(let code) = policy {
            for id in slow {
                guard let sub = s.subscribers.removeValue(forKey: id) else { continue }
                s.statistics.disconnectedSlow += 1
                after.logs.append("hub: a subscriber of \(topic) was too slow (\(outboxCapacity) messages waiting): disconnected with \(code)")
                after.disconnect.append((sub.subscriber, sub.outbox, code))
                for (t, entry) in sub.topics.sorted(by: { $0.key < $1.key }) {
                    removeFromTopic(id, topic: t, entry: entry, in: &s, after: &after)
                }
            }
        }
    }

    /// Logs the first drop of a subscriber, then every 1000th.
    private func noteDrop(_ id: ObjectIdentifier, topic: String, what: String, in s: inout State, after: inout After) {
        guard s.subscribers[id] != nil else { return }
        s.subscribers[id]!.drops += 1
        let n = s.subscribers[id]!.drops
        if n == 1 || n % 1000 == 0 {
            after.logs.append("hub: a slow subscriber of \(topic) lost the \(what) message (\(n) dropped so far)")
        }
    }

    /// Takes a subscriber out of one topic's list; announces and relays its presence leave.
    private func removeFromTopic(_ id: ObjectIdentifier, topic: String, entry: UInt64?, in s: inout State, after: inout After) {
        s.topics[topic]?.removeValue(forKey: id)
        if s.topics[topic]?.isEmpty == true { s.topics[topic] = nil }
        if let entry, let e = s.local.removeValue(forKey: entry) {
            if let left = e.presence.left { deliver(left, to: topic, except: id, in: &s, after: &after) }
            backplane?.relay(HubPresenceCodec.leave(topic: topic, entry: entry))
        }
    }

    private func relaySnapshot(_ s: State) {
        backplane?.relay(HubPresenceCodec.snapshot(s.local.map { ($0.key, $0.value.topic, $0.value.presence) }))
    }

    /// A presence change from another instance.
    private func applyPresence(_ envelope: HubEnvelope, from instance: String, in s: inout State, after: inout After) {
        guard let change = HubPresenceCodec.decode(envelope) else {
            after.logs.append("hub: ignored a malformed presence message from \(instance)")
            return
        }
        var entries = s.remote[instance] ?? [:]
        var notices: [(PreparedMessage, String)] = []
        switch change {
        case .request:
            relaySnapshot(s)
            return
        case .join(let topic, let entry, let name, let joined, let left):
            entries[entry] = RemoteEntry(topic: topic, name: name, joined: joined, left: left)
            if let m = joined?.prepared { notices.append((m, topic)) }
        case .leave(let entry):
            if let e = entries.removeValue(forKey: entry), let m = e.left?.prepared { notices.append((m, e.topic)) }
        case .snapshot(let list):
            // Whatever changed while we could not hear that instance is announced now.
            var now: [UInt64: RemoteEntry] = [:]
            for item in list {
                now[item.entry] = RemoteEntry(topic: item.topic, name: item.name, joined: item.joined, left: item.left)
            }
            for (id, e) in entries.sorted(by: { $0.key < $1.key }) where now[id] == nil {
                if let m = e.left?.prepared { notices.append((m, e.topic)) }
            }
            for (id, e) in now.sorted(by: { $0.key < $1.key }) where entries[id] == nil {
                if let m = e.joined?.prepared { notices.append((m, e.topic)) }
            }
            entries = now
        }
        s.remote[instance] = entries.isEmpty ? nil : entries
        for (m, topic) in notices { deliver(m, to: topic, except: nil, in: &s, after: &after) }
    }

    // MARK: Outside the lock

    private func finish(_ after: After) {
        for message in after.logs { logger.warning(message) }
        for (subscriber, outbox, code) in after.disconnect {
            // No more messages for it; what is queued still goes out if the socket drains.
            outbox.finish()
            Task { await subscriber.disconnect(code, reason: "too slow: message queue full") }
        }
    }

    /// Starts a new subscriber's writer (its outbox into its connection) and its watcher (its
    /// subscriptions end with the connection).
    private func start(_ subscriber: some HubSubscriber, outbox: HubOutbox) {
        let id = ObjectIdentifier(subscriber)
        Task { [weak self] in
            writing: while let batch = await outbox.take() {
                for message in batch {
                    do { try await subscriber.send(message) } catch { break writing }
                }
            }
            self?.remove(id, outbox: outbox)
        }
        Task { [weak self] in
            _ = await subscriber.done
            self?.remove(id, outbox: outbox)
        }
    }

    /// Ends every subscription of a subscriber whose connection ended.
    private func remove(_ id: ObjectIdentifier, outbox: HubOutbox) {
        outbox.finish()
        var after = After()
        state.withLock { s in
            // The same connection may have been dropped (and subscribed anew) meanwhile.
            guard let sub = s.subscribers[id], sub.outbox === outbox else { return }
            s.subscribers[id] = nil
            for (topic, entry) in sub.topics.sorted(by: { $0.key < $1.key }) {
                removeFromTopic(id, topic: topic, entry: entry, in: &s, after: &after)
            }
        }
        finish(after)
    }
}
