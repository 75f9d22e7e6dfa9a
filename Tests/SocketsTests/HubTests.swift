import NIOCore
import Synchronization
import Testing
@testable import Sockets

/// The hub without sockets: subscribers are test doubles that record what they are sent and can
/// be held mid-send (a slow consumer), so every slow-consumer policy is checked message by message.
@Suite struct HubTests {
    // MARK: Publish and subscribe

    @Test func publishReachesEverySubscriberButTheExcludedOne() async throws {
        let hub = Hub()
        let a = FakeSubscriber(), b = FakeSubscriber(), c = FakeSubscriber(), other = FakeSubscriber()
        #expect(hub.subscribe(a, to: "lobby"))
        #expect(!hub.subscribe(a, to: "lobby"), "a second subscribe changes nothing")
        hub.subscribe(b, to: "lobby")
        hub.subscribe(c, to: "lobby")
        hub.subscribe(other, to: "garden")
        #expect(hub.topicCount == 2)
        #expect(hub.topics == ["garden", "lobby"])
        #expect(hub.subscriberCount(of: "lobby") == 3)
        #expect(hub.subscriberCount == 4)

        let message = PreparedMessage.text("hello")
        hub.publish(message, to: "lobby", excluding: a)
        hub.publish(.text("second"), to: "lobby")
        try await b.waitFor(2)
        try await c.waitFor(2)
        try await a.waitFor(1)
        #expect(b.texts == ["hello", "second"])
        #expect(c.texts == ["hello", "second"])
        #expect(a.texts == ["second"])
        #expect(other.texts == [])
        // Encoded once: every subscriber got the very same storage.
        #expect(b.sameStorage(as: message, at: 0) && c.sameStorage(as: message, at: 0))
        #expect(hub.statistics.published == 2)
        #expect(hub.statistics.delivered == 5)
    }

    @Test func unsubscribeAndConnectionEndRemoveSubscriptions() async throws {
        let hub = Hub()
        let a = FakeSubscriber(), b = FakeSubscriber()
        hub.subscribe(a, to: "x")
        hub.subscribe(a, to: "y")
        hub.subscribe(b, to: "x")
        hub.unsubscribe(a, from: "x")
        hub.unsubscribe(a, from: "nope")
        #expect(hub.subscriberCount(of: "x") == 1)
        #expect(hub.subscriberCount(of: "y") == 1)
        b.end()
        try await until { hub.subscriberCount(of: "x") == 0 }
        #expect(hub.topics == ["y"])
        a.end()
        try await until { hub.topicCount == 0 }
        #expect(hub.subscriberCount == 0)
    }

    @Test func aFailingSendEndsTheSubscriptions() async throws {
        let hub = Hub()
        let a = FakeSubscriber()
        a.failSends()
        hub.subscribe(a, to: "x")
        hub.publish(.text("1"), to: "x")
        try await until { hub.subscriberCount(of: "x") == 0 }
    }

    // MARK: Slow consumers

    /// Capacity 2. Message 1 is taken by the writer, which then hangs in `send`; 2 and 3 wait in
    /// the outbox; 4 finds it full.
    private func fillOutbox(_ hub: Hub, _ slow: FakeSubscriber, _ fast: FakeSubscriber) async throws {
        slow.hold()
        hub.subscribe(slow, to: "t")
        hub.subscribe(fast, to: "t")
        hub.publish(.text("1"), to: "t")
        try await until { slow.sendsStarted == 1 }
        try await fast.waitFor(1)
        for i in 2...4 {
            hub.publish(.text("\(i)"), to: "t")
            try await fast.waitFor(i)  // so that only the slow one's outbox fills
        }
        #expect(Array(fast.texts.prefix(4)) == ["1", "2", "3", "4"], "a slow subscriber must not hold up the others")
    }

    @Test func dropNewestKeepsWhatWasQueued() async throws {
        let hub = Hub(outboxCapacity: 2, policy: .dropNewest)
        let slow = FakeSubscriber(), fast = FakeSubscriber()
        try await fillOutbox(hub, slow, fast)
        #expect(hub.statistics.droppedNewest == 1)
        slow.release()
        try await slow.waitFor(3)
        #expect(slow.texts == ["1", "2", "3"])
        #expect(slow.disconnects.isEmpty)
        #expect(hub.subscriberCount(of: "t") == 2)
    }

    @Test func dropOldestMakesRoomForTheNewest() async throws {
        let hub = Hub(outboxCapacity: 2)
        hub.setPolicy(.dropOldest, for: "t")
        let slow = FakeSubscriber(), fast = FakeSubscriber()
        try await fillOutbox(hub, slow, fast)
        #expect(hub.statistics.droppedOldest == 1)
        #expect(hub.statistics.droppedNewest == 0)
        slow.release()
        try await slow.waitFor(3)
        #expect(slow.texts == ["1", "3", "4"])
        #expect(slow.disconnects.isEmpty)
    }

    @Test func disconnectClosesWith1008AndUnsubscribesEverywhere() async throws {
        let hub = Hub(outboxCapacity: 2)
        let slow = FakeSubscriber(), fast = FakeSubscriber()
        hub.subscribe(slow, to: "other", presence: HubPresence(name: "slow", left: .text("slow left")))
        hub.subscribe(fast, to: "other")
        try await fillOutbox(hub, slow, fast)
        try await until { slow.disconnects.count == 1 }
        #expect(slow.disconnects.first?.0 == .policyViolation)
        #expect(slow.disconnects.first?.1 == "too slow: message queue full")
        #expect(hub.statistics.disconnectedSlow == 1)
        #expect(hub.subscriberCount(of: "t") == 1)
        #expect(hub.subscriberCount(of: "other") == 1)
        #expect(hub.members(of: "other") == [])
        try await fast.waitFor(5)
        #expect(fast.texts.last == "slow left", "its presence leave is announced")
        slow.release()
        // What was queued before the drop still goes out.
        try await slow.waitFor(3)
        #expect(slow.texts == ["1", "2", "3"])
    }

    @Test func aCustomDisconnectCode() async throws {
        let hub = Hub(outboxCapacity: 2, policy: .disconnect(4001))
        let slow = FakeSubscriber(), fast = FakeSubscriber()
        try await fillOutbox(hub, slow, fast)
        try await until { slow.disconnects.count == 1 }
        #expect(slow.disconnects.first?.0.rawValue == 4001)
        slow.release()
    }

    // MARK: Presence

    @Test func presenceListsMembersAndAnnouncesJoinsAndLeaves() async throws {
        let hub = Hub()
        let a = FakeSubscriber(), b = FakeSubscriber()
        hub.subscribe(a, to: "room", presence: HubPresence(name: "alice", joined: .text("+alice"), left: .text("-alice")))
        hub.subscribe(b, to: "room", presence: HubPresence(name: "bob", joined: .text("+bob"), left: .text("-bob")))
        #expect(hub.members(of: "room") == ["alice", "bob"])
        #expect(hub.members(of: "elsewhere") == [])
        try await a.waitFor(1)
        b.end()
        try await a.waitFor(2)
        #expect(a.texts == ["+bob", "-bob"])
        #expect(b.texts == [], "no notice of its own join")
        #expect(hub.members(of: "room") == ["alice"])
        hub.unsubscribe(a, from: "room")
        #expect(hub.members(of: "room") == [])
    }

    // MARK: Across instances (a loopback backplane)

    @Test func twoHubsThroughABackplane() async throws {
        let wire = LoopbackWire()
        let one = Hub(backplane: wire.instance("one"))
        let two = Hub(backplane: wire.instance("two"))
        wire.attach("one", one)
        wire.attach("two", two)
        let a = FakeSubscriber(), b = FakeSubscriber()
        one.subscribe(a, to: "room", presence: HubPresence(name: "alice", joined: .text("+alice"), left: .text("-alice")))
        try await until { two.members(of: "room") == ["alice"] }
        two.subscribe(b, to: "room", presence: HubPresence(name: "bob", joined: .text("+bob"), left: .text("-bob")))
        try await until { one.members(of: "room") == ["alice", "bob"] && two.members(of: "room") == ["alice", "bob"] }
        one.publish(.text("from one"), to: "room", excluding: a)
        two.publish(.binary(ByteBuffer(bytes: [0, 1, 2])), to: "room", excluding: b)
        try await b.waitFor(1)
        try await a.waitFor(2)
        #expect(b.texts == ["from one"])
        #expect(a.texts == ["+bob", "binary 000102"])
        #expect(two.statistics.receivedRemote == 1)
        // Instance two is gone: its members leave on instance one.
        try await until { one.statistics.receivedRemote == 1 }
        one.handle(.instanceGone("two"))
        try await a.waitFor(3)
        #expect(a.texts.last == "-bob")
        #expect(one.members(of: "room") == ["alice"])
        // It comes back: its snapshot brings bob back, with his join notice.
        two.handle(.connected)
        try await a.waitFor(4)
        #expect(a.texts.last == "+bob")
        #expect(one.members(of: "room") == ["alice", "bob"])
        // A snapshot without bob (he left while the instances could not hear each other).
        wire.muted = true
        b.end()
        try await until { two.members(of: "room") == ["alice"] }
        wire.muted = false
        two.handle(.instanceAppeared("one"))
        try await a.waitFor(5)
        #expect(a.texts.last == "-bob")
        #expect(one.members(of: "room") == ["alice"])
    }

    @Test func presenceCodecRoundTripAndMalformedInput() {
        let presence = HubPresence(name: "zoë", joined: .text("in"), left: .binary(ByteBuffer(bytes: [9])))
        let join = HubPresenceCodec.join(topic: "t", entry: 7, presence: presence)
        #expect(HubPresenceCodec.decode(join) == .join(
            topic: "t", entry: 7, name: "zoë",
            joined: .init(kind: .text, payload: ByteBuffer(string: "in")), left: .init(kind: .binary, payload: ByteBuffer(bytes: [9]))))
        #expect(HubPresenceCodec.decode(HubPresenceCodec.leave(topic: "t", entry: 3)) == .leave(entry: 3))
        let snap = HubPresenceCodec.snapshot([(2, "b", HubPresence(name: "n2")), (1, "a", presence)])
        guard case .snapshot(let items)? = HubPresenceCodec.decode(snap) else {
            Issue.record("snapshot did not decode")
            return
        }
        #expect(items.map(\.entry) == [1, 2])
        #expect(items.map(\.topic) == ["a", "b"])
        #expect(items[1].joined == nil && items[1].left == nil)
        // Every truncation of a valid message, trailing bytes, and unknown ops are refused.
        for envelope in [join, snap] {
            for n in 0..<envelope.payload.readableBytes {
                let cut = HubEnvelope(topic: "t", kind: .presence, payload: envelope.payload.getSlice(at: 0, length: n)!)
                #expect(HubPresenceCodec.decode(cut) == nil, "truncated at \(n)")
            }
            var longer = envelope.payload
            longer.writeInteger(UInt8(0))
            #expect(HubPresenceCodec.decode(HubEnvelope(topic: "t", kind: .presence, payload: longer)) == nil)
        }
        #expect(HubPresenceCodec.decode(HubEnvelope(topic: "t", kind: .presence, payload: ByteBuffer(bytes: [9]))) == nil)
        // A join whose name claims more bytes than there are.
        #expect(HubPresenceCodec.decode(HubEnvelope(topic: "t", kind: .presence, payload: ByteBuffer(bytes: [1, 0, 0, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255]))) == nil)
    }

    @Test func malformedPresenceFromAnotherInstanceIsIgnored() async throws {
        let hub = Hub()
        let a = FakeSubscriber()
        hub.subscribe(a, to: "room")
        hub.handle(.envelope(HubEnvelope(topic: "room", kind: .presence, payload: ByteBuffer(bytes: [1, 2])), from: "x"))
        hub.handle(.envelope(HubEnvelope(topic: "room", kind: HubEnvelope.Kind(rawValue: 99), payload: ByteBuffer(string: "?")), from: "x"))
        hub.handle(.envelope(HubEnvelope(topic: "room", kind: .text, payload: ByteBuffer(string: "ok")), from: "x"))
        try await a.waitFor(1)
        #expect(a.texts == ["ok"])
        #expect(hub.members(of: "room") == [])
        #expect(hub.statistics.receivedRemote == 1)
    }
}

// MARK: - Test doubles

/// Polls `condition` every 5 ms for up to 5 s.
func until(_ what: String = "condition", _ condition: () -> Bool) async throws {
    for _ in 0..<1000 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("timed out waiting for \(what)")
    throw CancellationError()
}

/// Records sends; can hold every send until released, fail sends, and end its "connection".
final class FakeSubscriber: HubSubscriber {
    private struct State {
        var received: [PreparedMessage] = []
        var disconnects: [(CloseCode, String)] = []
        var sendsStarted = 0
        var holding = false
        var failing = false
        var held: [CheckedContinuation<Void, Never>] = []
        var done: CloseCode?
        var doneWaiters: [CheckedContinuation<CloseCode, Never>] = []
    }
    private let state = Mutex(State())

    func send(_ prepared: PreparedMessage) async throws {
        let (fail, hold) = state.withLock { s in
            s.sendsStarted += 1
            return (s.failing, s.holding)
        }
        if fail { throw WebSocketError.closed }
        if hold {
            await withCheckedContinuation { c in
                let now = state.withLock { s -> Bool in
                    if !s.holding { return true }
                    s.held.append(c)
                    return false
                }
                if now { c.resume() }
            }
        }
        state.withLock { $0.received.append(prepared) }
    }

    func disconnect(_ code: CloseCode, reason: String) async {
        state.withLock { $0.disconnects.append((code, reason)) }
    }

    var done: CloseResult {
        get async { CloseResult(code: await doneCode, reason: "") }
    }

    private var doneCode: CloseCode {
        get async {
            await withCheckedContinuation { c in
                let now = state.withLock { s -> CloseCode? in
                    if let d = s.done { return d }
                    s.doneWaiters.append(c)
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        }
    }

    func hold() { state.withLock { $0.holding = true } }
    func failSends() { state.withLock { $0.failing = true } }
    func release() {
        let held = state.withLock { s in
            s.holding = false
            defer { s.held = [] }
            return s.held
        }
        for c in held { c.resume() }
    }
    func end() {
        let waiters = state.withLock { s in
            s.done = .normalClosure
            defer { s.doneWaiters = [] }
            return s.doneWaiters
        }
        for c in waiters { c.resume(returning: .normalClosure) }
    }

    var sendsStarted: Int { state.withLock { $0.sendsStarted } }
    var disconnects: [(CloseCode, String)] { state.withLock { $0.disconnects } }
    var texts: [String] {
        state.withLock { $0.received }.map { m in
            switch m.frame {
            case .text(let b): String(buffer: b)
            case .binary(let b): "binary " + b.readableBytesView.map { String(format2: $0) }.joined()
            default: "?"
            }
        }
    }
    func sameStorage(as message: PreparedMessage, at index: Int) -> Bool {
        guard case .text(let mine) = state.withLock({ $0.received[index].frame }), case .text(let theirs) = message.frame else { return false }
        return mine.withUnsafeReadableBytes { a in theirs.withUnsafeReadableBytes { b in a.baseAddress == b.baseAddress } }
    }
    func waitFor(_ n: Int) async throws {
        try await until("\(n) messages (have \(texts))") { state.withLock { $0.received.count } >= n }
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}

/// Backplanes of several in-process hubs wired to each other synchronously: a relay reaches every
/// other attached hub at once. `muted` loses relays, as a network outage would.
final class LoopbackWire: Sendable {
    private struct State {
        var hubs: [String: Hub] = [:]
        var muted = false
    }
    private let state = Mutex(State())
    /// Relays made while muted are lost.
    var muted: Bool {
        get { state.withLock { $0.muted } }
        set { state.withLock { $0.muted = newValue } }
    }

    struct Instance: HubBackplane {
        let wire: LoopbackWire
        let instanceID: String
        func relay(_ envelope: HubEnvelope) { wire.queue(envelope, from: instanceID) }
        func run(_ events: @escaping @Sendable (HubBackplaneEvent) -> Void) async throws {}
    }

    private struct Pending {
        var items: [(HubEnvelope, String)] = []
        var draining = false
    }
    private let pending = Mutex(Pending())

    func instance(_ id: String) -> Instance { Instance(wire: self, instanceID: id) }
    func attach(_ id: String, _ hub: Hub) { state.withLock { $0.hubs[id] = hub } }

    /// Relays arrive under the sender's lock: they are delivered from one task, in order, after it.
    fileprivate func queue(_ envelope: HubEnvelope, from id: String) {
        if muted { return }
        let start = pending.withLock { p -> Bool in
            p.items.append((envelope, id))
            if p.draining { return false }
            p.draining = true
            return true
        }
        if start { Task { self.drain() } }
    }

    private func drain() {
        while let (envelope, from) = pending.withLock({ p -> (HubEnvelope, String)? in
            if p.items.isEmpty {
                p.draining = false
                return nil
            }
            return p.items.removeFirst()
        }) {
            for (id, hub) in state.withLock({ $0.hubs }) where id != from {
                hub.handle(.envelope(envelope, from: from))
            }
        }
    }
}
