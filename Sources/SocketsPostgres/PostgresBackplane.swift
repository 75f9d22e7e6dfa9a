import Foundation
public import Logging
import NIOCore
import PostgresNIO
public import Sockets
import Synchronization

/// A ``Sockets/HubBackplane`` through PostgreSQL's `LISTEN`/`NOTIFY`: the hubs of every instance
/// connected to the same database and channel share their topics.
///
/// ```swift
/// let backplane = try PostgresBackplane(url: "postgres://user:secret@db:5432/app", logger: logger)
/// let hub = Hub(backplane: backplane)
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await hub.run() }     // connects, listens, reconnects
///     try await app.run(port: 8080)
///     group.cancelAll()                         // says goodbye: the others see our members leave
/// }
/// ```
///
/// ## What is guaranteed
/// - **Locally, always:** a publish reaches this instance's subscribers at once, whether or not
///   PostgreSQL is reachable.
/// - **Across instances, while connected:** every publish is sent once as a `NOTIFY` (with this
///   instance's id and a sequence number). Each other instance that is listening delivers it
///   exactly once and in this instance's publish order: duplicates (a sequence number already
///   seen) are dropped and counted, an instance's own notifications are ignored.
/// - **Payloads of any size:** a notification whose text would reach PostgreSQL's 8,000-byte
///   limit (``notifyLimit``) carries only a reference; the payload goes through a table
///   (``Configuration/table``) in the same statement, and rows older than
///   ``Configuration/retention`` are deleted. An instance that falls further behind than that
///   misses the payload, and counts it in ``PostgresBackplaneStatistics/missed``.
/// - **A lost connection is not silent:** the backplane reconnects with exponential backoff
///   (``Configuration/reconnectDelay``). What this instance publishes meanwhile is delivered
///   locally only: it is counted in ``PostgresBackplaneStatistics/notRelayed`` and logged when the
///   connection is back. What other instances published while we could not hear them is not
///   replayed either: the next notification or heartbeat from that instance shows the gap in its
///   sequence, which is counted in ``PostgresBackplaneStatistics/missed`` and logged. Presence is
///   repaired: on every (re)connection each hub sends a snapshot of its members, and members who
///   joined or left during the gap are announced then.
/// - **Instances that go away:** one that stops cleanly says goodbye, and the others announce its
///   members' leaves at once; one that dies is declared gone when it has not been heard for
///   ``Configuration/instanceTimeout`` (it sends a heartbeat every
///   ``Configuration/heartbeatInterval``).
/// - Not guaranteed: delivery across instances of what was published while either side was
///   disconnected; any order between publishes of different instances.
public final class PostgresBackplane: HubBackplane {
    /// Where to connect and how to behave.
    public struct Configuration: Sendable {
        /// The server's host name or address.
        public var host: String
        /// The server's port; default 5432.
        public var port: Int = 5432
        /// The user name.
        public var username: String
        /// The password, if the server asks for one.
        public var password: String?
        /// The database; default: the server's default for the user.
        public var database: String?
        /// The `LISTEN`/`NOTIFY` channel shared by the instances: a lower-case SQL identifier
        /// (`[a-z_][a-z0-9_]*`, at most 63 bytes); default `sockets_hub`. Instances on different
        /// channels do not hear each other.
        public var channel = "sockets_hub"
        /// The table for payloads too big for a notification: a lower-case SQL identifier,
        /// created when missing; default `sockets_hub_payloads`.
        public var table = "sockets_hub_payloads"
        /// How often this instance says it is alive; default 1 s.
        public var heartbeatInterval: Duration = .seconds(1)
        /// How long an instance may stay silent before its members are declared gone; default 5 s
        /// (five heartbeats). Must be longer than `heartbeatInterval`.
        public var instanceTimeout: Duration = .seconds(5)
        /// How long a big payload stays in the table; default 60 s: far longer than delivery takes.
        public var retention: Duration = .seconds(60)
        /// The first and the longest wait between reconnection attempts; default 100 ms to 5 s,
        /// doubling after each failure.
        public var reconnectDelay: ClosedRange<Duration> = .milliseconds(100) ... .seconds(5)
        /// The most publishes waiting to be sent to PostgreSQL; past it they are delivered locally
        /// only (and counted in ``PostgresBackplaneStatistics/notRelayed``); default 10,000.
        public var maxPending = 10_000

        /// A configuration from its parts.
        public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String? = nil) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
        }

        /// A configuration from a URL: `postgres://user[:password]@host[:port][/database]`
        /// (`postgresql://` too), with optional query items `channel=` and `table=`.
        ///
        /// - Throws: ``PostgresBackplaneError`` `.invalidURL` (not a URL, no host or no user),
        ///   `.unsupportedScheme`, `.unsupportedOption` (another query item, TLS among them:
        ///   TLS is not supported yet), `.invalidName` (channel or table).
        public init(url: String) throws {
            guard let c = URLComponents(string: url), c.scheme != nil else {
                throw PostgresBackplaneError(.invalidURL, "not a URL: \(url)")
            }
            guard c.scheme == "postgres" || c.scheme == "postgresql" else {
                throw PostgresBackplaneError(.unsupportedScheme, "the scheme must be postgres:// or postgresql://, not \(c.scheme ?? "")://")
            }
            guard let host = c.host, !host.isEmpty else { throw PostgresBackplaneError(.invalidURL, "no host in \(url)") }
            guard let user = c.user, !user.isEmpty else { throw PostgresBackplaneError(.invalidURL, "no user in \(url) (postgres://USER@HOST/...)") }
            self.init(host: host, port: c.port ?? 5432, username: user, password: c.password)
            let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
            database = path.isEmpty ? nil : path
            for item in c.queryItems ?? [] {
                switch item.name {
                case "channel": channel = item.value ?? ""
                case "table": table = item.value ?? ""
                default:
                    throw PostgresBackplaneError(.unsupportedOption, "unsupported option \(item.name) (supported: channel, table; TLS is not supported yet)")
                }
            }
            try validate()
        }

        /// Checks the names and durations.
        ///
        /// - Throws: ``PostgresBackplaneError`` `.invalidName` or `.invalidDuration`.
        public func validate() throws {
            for (field, name) in [("channel", channel), ("table", table)] where !Self.isIdentifier(name) {
                throw PostgresBackplaneError(.invalidName, "\(field) must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 bytes): \(name)")
            }
            guard heartbeatInterval > .zero, instanceTimeout > heartbeatInterval, retention > .zero,
                  reconnectDelay.lowerBound > .zero else {
                throw PostgresBackplaneError(.invalidDuration, "heartbeatInterval, retention and reconnectDelay must be positive, and instanceTimeout longer than heartbeatInterval")
            }
        }

        static func isIdentifier(_ s: String) -> Bool {
            guard let first = s.utf8.first, s.utf8.count <= 63, first == UInt8(ascii: "_") || (97...122).contains(first) else { return false }
            return s.utf8.allSatisfy { $0 == UInt8(ascii: "_") || (97...122).contains($0) || (48...57).contains($0) }
        }
    }

    /// PostgreSQL's limit: a notification's payload must be shorter than 8,000 bytes.
    public static let notifyLimit = 8000

    /// This instance's id (random, new for every backplane).
    public let instanceID: String
    /// The configuration.
    public let configuration: Configuration
    private let logger: Logger
    private let state = Mutex(State())

    /// A backplane (it connects when the hub runs it).
    ///
    /// - Throws: ``PostgresBackplaneError`` for an invalid configuration (see ``Configuration/validate()``).
    public init(configuration: Configuration, logger: Logger = Logger(label: "sockets.postgres")) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.instanceID = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    }

    /// A backplane from a URL; see ``Configuration/init(url:)``.
    public convenience init(url: String, logger: Logger = Logger(label: "sockets.postgres")) throws {
        try self.init(configuration: Configuration(url: url), logger: logger)
    }

    /// Counts since the backplane started.
    public var statistics: PostgresBackplaneStatistics { state.withLock { $0.statistics } }

    /// The sequence number of the last publish (tests size notifications with it).
    var lastSequence: UInt64 { state.withLock { $0.sequence } }

    /// Whether the backplane is connected and listening now.
    public var isConnected: Bool { state.withLock { $0.connected } }

    // MARK: Relaying

    /// Queues a publish for PostgreSQL (with the next sequence number), or counts it as not
    /// relayed while disconnected. Never waits.
    public func relay(_ envelope: HubEnvelope) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.sequence += 1
            guard s.connected, s.pending.count < configuration.maxPending else {
                s.statistics.notRelayed += 1
                s.unrelayedSinceReport += 1
                return nil
            }
            s.pending.append(.envelope(s.sequence, envelope))
            defer { s.senderWaiter = nil }
            return s.senderWaiter
        }
        waiter?.resume()
    }

    // MARK: Running

    /// Connects, listens and relays until the task is cancelled, reconnecting with backoff; says
    /// goodbye on the way out. Never throws: a server that cannot be reached is retried.
    public func run(_ events: @escaping @Sendable (HubBackplaneEvent) -> Void) async throws {
        var delay = configuration.reconnectDelay.lowerBound
        var attempt = 0
        while !Task.isCancelled {
            attempt += 1
            var connection: PostgresConnection?
            do {
                let c = try await PostgresConnection.connect(configuration: connectionConfiguration, id: attempt, logger: logger)
                connection = c
                try await prepareTable(on: c)
                try await c.listen(on: configuration.channel) { notifications in
                    delay = configuration.reconnectDelay.lowerBound
                    connected(events)
                    try await serve(c, notifications, events)
                }
            } catch {
                if !Task.isCancelled {
                    let lost = disconnected()
                    logger.warning("hub backplane: PostgreSQL at \(configuration.host):\(configuration.port) \(lost.wasConnected ? "connection lost" : "unreachable"): \(String(reflecting: error)); \(lost.dropped) unsent publishes delivered locally only; retrying in \(delay)")
                }
            }
            if Task.isCancelled, let connection {
                // What is queued still goes out (best effort), then goodbye, so that the others
                // announce our members' leaves now rather than after the instance timeout.
                let rest = state.withLock { s in
                    defer { s.pending = [] }
                    return s.pending
                }
                try? await send(rest, on: connection)
                _ = disconnected()
                let bye = "B \(instanceID) \(state.withLock { $0.sequence })"
                _ = try? await connection.query("SELECT pg_notify(\(configuration.channel), \(bye))", logger: logger)
            }
            try? await connection?.close()
            if Task.isCancelled { break }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, configuration.reconnectDelay.upperBound)
        }
        _ = disconnected()
    }

    private var connectionConfiguration: PostgresConnection.Configuration {
        PostgresConnection.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: .disable
        )
    }

    /// Creates the payload table when missing (two instances may race to create it).
    private func prepareTable(on c: PostgresConnection) async throws {
        let sql = "CREATE TABLE IF NOT EXISTS \(configuration.table) (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), body text NOT NULL)"
        do {
            try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        } catch {
            try await Task.sleep(for: .milliseconds(50))
            try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        }
    }

    /// Now listening: publishes go to PostgreSQL from here on.
    private func connected(_ events: @Sendable (HubBackplaneEvent) -> Void) {
        let (unrelayed, reconnect) = state.withLock { s -> (Int, Bool) in
            s.connected = true
            s.statistics.connections += 1
            let now = ContinuousClock.now
            for k in s.peers.keys { s.peers[k]!.lastHeard = now }
            defer { s.unrelayedSinceReport = 0 }
            return (s.unrelayedSinceReport, s.statistics.connections > 1)
        }
        if reconnect || unrelayed > 0 {
            logger.warning("hub backplane: connected again to PostgreSQL; \(unrelayed) publishes made meanwhile were delivered locally only (\(statistics.notRelayed) in all)")
        } else {
            logger.info("hub backplane: listening on PostgreSQL channel \(configuration.channel) as instance \(instanceID)")
        }
        events(.connected)
    }

    /// No longer connected: the queue is dropped (and counted).
    private func disconnected() -> (wasConnected: Bool, dropped: Int) {
        let (was, dropped, waiter) = state.withLock { s -> (Bool, Int, CheckedContinuation<Void, Never>?) in
            let was = s.connected
            s.connected = false
            let dropped = s.pending.count { if case .envelope = $0 { true } else { false } }
            s.statistics.notRelayed += dropped
            s.unrelayedSinceReport += dropped
            s.pending = []
            if was { s.statistics.connectionLosses += 1 }
            defer { s.senderWaiter = nil }
            return (was, dropped, s.senderWaiter)
        }
        waiter?.resume()
        return (was, dropped)
    }

    /// Sends, receives and ticks until one of them fails (the connection is gone) or the task is
    /// cancelled.
    private func serve(_ c: PostgresConnection, _ notifications: PostgresNotificationSequence, _ events: @escaping @Sendable (HubBackplaneEvent) -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.sendLoop(c) }
            group.addTask { try await self.tickLoop(c, events) }
            group.addTask {
                for try await n in notifications {
                    try await self.received(n.payload, on: c, events)
                }
                throw PostgresBackplaneError(.connectionLost, "the notification stream ended")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    // MARK: Sending

    private func sendLoop(_ c: PostgresConnection) async throws {
        while !Task.isCancelled {
            guard let batch = await nextBatch() else {
                throw PostgresBackplaneError(.connectionLost, "disconnected")
            }
            try await send(batch, on: c)
        }
    }

    /// Sends notifications in order: runs of small ones in one statement each, big ones through
    /// the table. When it fails, the publishes not sent are counted as not relayed.
    private func send(_ batch: [Outgoing], on c: PostgresConnection) async throws {
        var sent = 0
        do {
            var inline: [String] = []
            for item in batch {
                let text = item.notification(from: instanceID)
                if text.utf8.count < Self.notifyLimit {
                    inline.append(text)
                    continue
                }
                // Too big for a notification: the body goes into the table and the notification
                // carries its id, in one statement (so the row is there before anyone hears of it).
                sent += try await flush(&inline, on: c)
                guard case .envelope(let seq, let envelope) = item else { continue }
                let body = Self.body(envelope)
                let prefix = "T \(instanceID) \(seq) "
                try await c.query("""
                    WITH row AS (INSERT INTO \(unescaped: configuration.table) (body) VALUES (\(body)) RETURNING id)
                    SELECT pg_notify(\(configuration.channel), \(prefix) || id::text) FROM row
                    """, logger: logger)
                sent += 1
                state.withLock {
                    $0.statistics.relayed += 1
                    $0.statistics.relayedThroughTable += 1
                }
            }
            sent += try await flush(&inline, on: c)
        } catch {
            let lost = batch.count { if case .envelope = $0 { true } else { false } } - sent
            state.withLock {
                $0.statistics.notRelayed += lost
                $0.unrelayedSinceReport += lost
            }
            throw error
        }
    }

    /// Sends a run of notifications in one statement, in order; returns how many were publishes.
    private func flush(_ texts: inout [String], on c: PostgresConnection) async throws -> Int {
        guard !texts.isEmpty else { return 0 }
        let n = texts.count { !$0.hasPrefix("H ") }
        try await c.query("""
            SELECT pg_notify(\(configuration.channel), t.p) FROM unnest(\(texts)::text[]) WITH ORDINALITY AS t(p, i) ORDER BY t.i
            """, logger: logger)
        texts = []
        state.withLock { $0.statistics.relayed += n }
        return n
    }

    /// Everything waiting (at most 256), waiting for something if there is nothing; nil once
    /// disconnected or cancelled.
    private func nextBatch() async -> [Outgoing]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    if !s.pending.isEmpty || !s.connected || Task.isCancelled { return true }
                    s.senderWaiter = c
                    return false
                }
                if ready { c.resume() }
            }
        } onCancel: {
            let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.senderWaiter = nil }
                return s.senderWaiter
            }
            w?.resume()
        }
        return state.withLock { s in
            if !s.connected || Task.isCancelled { return nil }
            let n = min(256, s.pending.count)
            defer { s.pending.removeFirst(n) }
            return Array(s.pending.prefix(n))
        }
    }

    /// Heartbeats, instance timeouts, and the table's clean-up.
    private func tickLoop(_ c: PostgresConnection, _ events: @Sendable (HubBackplaneEvent) -> Void) async throws {
        var lastCleanup = ContinuousClock.now
        while true {
            try await Task.sleep(for: configuration.heartbeatInterval)
            let now = ContinuousClock.now
            let (gone, waiter) = state.withLock { s -> ([String], CheckedContinuation<Void, Never>?) in
                s.pending.append(.heartbeat(s.sequence))
                let gone = s.peers.filter { now - $0.value.lastHeard > configuration.instanceTimeout }.map(\.key).sorted()
                for g in gone { s.peers[g] = nil }
                defer { s.senderWaiter = nil }
                return (gone, s.senderWaiter)
            }
            waiter?.resume()
            for g in gone {
                logger.warning("hub backplane: instance \(g) not heard for \(configuration.instanceTimeout): declared gone")
                events(.instanceGone(g))
            }
            if now - lastCleanup > configuration.retention / 2 {
                lastCleanup = now
                let seconds = Double(configuration.retention.components.seconds) + Double(configuration.retention.components.attoseconds) / 1e18
                try await c.query("DELETE FROM \(unescaped: configuration.table) WHERE created_at < now() - make_interval(secs => \(seconds))", logger: logger)
            }
        }
    }

    // MARK: Receiving

    private func received(_ text: String, on c: PostgresConnection, _ events: @Sendable (HubBackplaneEvent) -> Void) async throws {
        guard let n = Notification(text) else {
            state.withLock { $0.statistics.malformed += 1 }
            logger.warning("hub backplane: ignored a malformed notification (\(text.prefix(64)))")
            return
        }
        guard n.instance != instanceID else { return }
        enum Verdict { case deliver, duplicate, gone }
        let (verdict, appeared, missed) = state.withLock { s -> (Verdict, Bool, UInt64) in
            let now = ContinuousClock.now
            var appeared = false
            if s.peers[n.instance] == nil {
                // First contact: whatever it published before is not ours to miss.
                s.peers[n.instance] = Peer(lastSequence: n.isMessage ? n.sequence - 1 : n.sequence, lastHeard: now)
                appeared = n.kind != "B"
            }
            s.peers[n.instance]!.lastHeard = now
            let last = s.peers[n.instance]!.lastSequence
            if n.kind == "B" {
                // Goodbye carries the last sequence number sent before it.
                s.peers[n.instance] = nil
                let missed = n.sequence > last ? n.sequence - last : 0
                s.statistics.missed += Int(missed)
                return (.gone, false, missed)
            }
            if n.sequence <= last && n.isMessage {
                s.statistics.duplicates += 1
                return (.duplicate, appeared, 0)
            }
            // A heartbeat carries the last sequence number sent before it.
            let missed = n.sequence > last ? n.sequence - last - (n.isMessage ? 1 : 0) : 0
            s.statistics.missed += Int(missed)
            s.peers[n.instance]!.lastSequence = max(last, n.sequence)
            return (.deliver, appeared, missed)
        }
        if appeared { events(.instanceAppeared(n.instance)) }
        if missed > 0 {
            logger.warning("hub backplane: missed \(missed) publishes of instance \(n.instance) (published while one of us was disconnected)")
            events(.missed(from: n.instance))
        }
        switch verdict {
        case .duplicate:
            logger.debug("hub backplane: dropped a duplicate (\(n.instance) #\(n.sequence))")
        case .gone:
            events(.instanceGone(n.instance))
        case .deliver:
            var body = n.body
            if n.kind == "T", let id = Int64(n.body) {
                body = ""
                let rows = try await c.query("SELECT body FROM \(unescaped: configuration.table) WHERE id = \(id)", logger: logger)
                for try await b in rows.decode(String.self) { body = b }
                state.withLock { $0.statistics.receivedThroughTable += 1 }
            }
            guard n.isMessage else { return }
            guard let envelope = Self.envelope(fromBody: body) else {
                state.withLock { $0.statistics.missed += 1 }
                logger.warning("hub backplane: the payload of \(n.instance) #\(n.sequence) is gone from \(configuration.table) (older than the retention) or malformed")
                return
            }
            state.withLock { $0.statistics.received += 1 }
            events(.envelope(envelope, from: n.instance))
        }
    }

    // MARK: Wire format

    /// A notification's text: `KIND INSTANCE SEQUENCE [BODY]`, space-separated.
    /// - `M`: a publish; BODY is `ENVELOPE-KIND BASE64(TOPIC) BASE64(PAYLOAD)`.
    /// - `T`: a publish too big for a notification; BODY is the id of its row in the table, whose
    ///   `body` column holds the `M` body.
    /// - `H`: a heartbeat; SEQUENCE is the last one sent before it.
    /// - `B`: goodbye (the instance is stopping).
    struct Notification: Equatable {
        let kind: String
        let instance: String
        let sequence: UInt64
        let body: String
        var isMessage: Bool { kind == "M" || kind == "T" }

        init(kind: String, instance: String, sequence: UInt64, body: String) {
            self.kind = kind
            self.instance = instance
            self.sequence = sequence
            self.body = body
        }

        init?(_ text: String) {
            let parts = text.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count >= 3, ["M", "T", "H", "B"].contains(parts[0]), !parts[1].isEmpty,
                  let seq = UInt64(parts[2]) else { return nil }
            let body = parts.count == 4 ? String(parts[3]) : ""
            if (parts[0] == "M" || parts[0] == "T") == body.isEmpty { return nil }
            self.init(kind: String(parts[0]), instance: String(parts[1]), sequence: seq, body: body)
        }
    }

    static func body(_ envelope: HubEnvelope) -> String {
        "\(envelope.kind.rawValue) \(Data(envelope.topic.utf8).base64EncodedString()) \(Data(envelope.payload.readableBytesView).base64EncodedString())"
    }

    static func envelope(fromBody body: String) -> HubEnvelope? {
        let parts = body.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, let kind = UInt8(parts[0]),
              let topic = Data(base64Encoded: String(parts[1])), let payload = Data(base64Encoded: String(parts[2])),
              let topicString = String(data: topic, encoding: .utf8) else { return nil }
        return HubEnvelope(topic: topicString, kind: HubEnvelope.Kind(rawValue: kind), payload: ByteBuffer(bytes: payload))
    }

    // MARK: State

    enum Outgoing {
        case envelope(UInt64, HubEnvelope)
        case heartbeat(UInt64)

        func notification(from instance: String) -> String {
            switch self {
            case .envelope(let seq, let e): "M \(instance) \(seq) \(PostgresBackplane.body(e))"
            case .heartbeat(let seq): "H \(instance) \(seq)"
            }
        }
    }

    private struct Peer {
        var lastSequence: UInt64
        var lastHeard: ContinuousClock.Instant
    }

    private struct State {
        var sequence: UInt64 = 0
        var connected = false
        var pending: [Outgoing] = []
        var senderWaiter: CheckedContinuation<Void, Never>?
        var peers: [String: Peer] = [:]
        var statistics = PostgresBackplaneStatistics()
        var unrelayedSinceReport = 0
    }
}

/// Counts since a ``PostgresBackplane`` started.
public struct PostgresBackplaneStatistics: Sendable, Equatable {
    /// Publishes sent to PostgreSQL.
    public var relayed = 0
    /// Of those, publishes too big for a notification, sent through the table.
    public var relayedThroughTable = 0
    /// Publishes delivered locally only: made while disconnected, waiting when the connection was
    /// lost, or over ``PostgresBackplane/Configuration/maxPending``.
    public var notRelayed = 0
    /// Publishes of other instances delivered to the hub.
    public var received = 0
    /// Of those, payloads read from the table.
    public var receivedThroughTable = 0
    /// Publishes of other instances seen twice and dropped.
    public var duplicates = 0
    /// Publishes of other instances never received: gaps in their sequence numbers, and table
    /// payloads gone before they were read.
    public var missed = 0
    /// Notifications on the channel that were not the backplane's.
    public var malformed = 0
    /// Connections established (the first and every reconnection).
    public var connections = 0
    /// Connections lost.
    public var connectionLosses = 0

    /// All zero.
    public init() {}
}

/// A configuration the PostgreSQL backplane cannot use, or a lost connection.
public struct PostgresBackplaneError: Error, Hashable, CustomStringConvertible {
    /// What kind of error.
    public struct Code: RawRepresentable, Hashable, Sendable {
        /// A short stable name: `invalid-url`, `unsupported-scheme`, ...
        public let rawValue: String
        /// Wraps a name.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The URL cannot be parsed, or has no host or user.
        public static let invalidURL = Code(rawValue: "invalid-url")
        /// The URL's scheme is not `postgres` or `postgresql`.
        public static let unsupportedScheme = Code(rawValue: "unsupported-scheme")
        /// The URL has a query item other than `channel` and `table`.
        public static let unsupportedOption = Code(rawValue: "unsupported-option")
        /// The channel or table name is not a lower-case SQL identifier.
        public static let invalidName = Code(rawValue: "invalid-name")
        /// A duration is not positive, or the instance timeout not longer than the heartbeat.
        public static let invalidDuration = Code(rawValue: "invalid-duration")
        /// The connection to PostgreSQL ended (the backplane reconnects).
        public static let connectionLost = Code(rawValue: "connection-lost")
    }

    /// What kind of error.
    public let code: Code
    /// What exactly was wrong.
    public let message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
