import Foundation
import Logging
import NIOCore
import Synchronization
import Testing
@testable import Sockets
@testable import SocketsPostgres

/// The PostgreSQL backplane against a real PostgreSQL server: a throwaway cluster made and
/// started by Tests/Interop/pg_cluster.py (initdb + pg_ctl on 127.0.0.1, a free port), stopped
/// and removed at the end even when a test fails. Fails (never skips) when PostgreSQL or python3
/// is missing: `.ci/run` installs them.
@Suite(.serialized) struct PostgresBackplaneTests {
    // MARK: Configuration

    @Test func badURLsAndSettingsAreRefusedWithTheirCode() throws {
        func code(_ url: String) -> PostgresBackplaneError.Code? {
            do {
                _ = try PostgresBackplane.Configuration(url: url)
                return nil
            } catch let e as PostgresBackplaneError {
                return e.code
            } catch {
                return nil
            }
        }
        #expect(code("not a url") == .invalidURL)
        #expect(code("postgres:///db") == .invalidURL)
        #expect(code("postgres://db.example/app") == .invalidURL, "no user")
        #expect(code("http://user@db.example/app") == .unsupportedScheme)
        #expect(code("postgres://user@db.example/app?sslmode=require") == .unsupportedOption)
        #expect(code("postgres://user@db.example/app?channel=Bad-Name") == .invalidName)
        #expect(code("postgres://user@db.example/app?table=1x") == .invalidName)
        #expect(code("postgres://user@db.example/app?channel=" + String(repeating: "a", count: 64)) == .invalidName)
        let ok = try PostgresBackplane.Configuration(url: "postgresql://me:pw@db.example:6543/app?channel=room_bus&table=big_payloads")
        #expect(ok.host == "db.example" && ok.port == 6543 && ok.username == "me" && ok.password == "pw" && ok.database == "app")
        #expect(ok.channel == "room_bus" && ok.table == "big_payloads")
        var timing = ok
        timing.instanceTimeout = timing.heartbeatInterval
        #expect(throws: PostgresBackplaneError.self) { try timing.validate() }
        #expect((try? timing.validate()) == nil)
        do { try timing.validate() } catch let e as PostgresBackplaneError { #expect(e.code == .invalidDuration) }
    }

    @Test func notificationTextsParseOrAreRefused() {
        #expect(PostgresBackplane.Notification("M abc 7 1 dA== aGk=") == .init(kind: "M", instance: "abc", sequence: 7, body: "1 dA== aGk="))
        #expect(PostgresBackplane.Notification("H abc 7") == .init(kind: "H", instance: "abc", sequence: 7, body: ""))
        for bad in ["", "M", "M abc", "M abc x 1 a b", "X abc 1 body", "M abc 1", "H abc 1 extra", "M  1 1 a b", "M abc -1 1 a b"] {
            #expect(PostgresBackplane.Notification(bad) == nil, "\(bad)")
        }
        let e = HubEnvelope(topic: "zoë/2", kind: .binary, payload: ByteBuffer(bytes: [0, 255, 10]))
        #expect(PostgresBackplane.envelope(fromBody: PostgresBackplane.body(e)) == e)
        #expect(PostgresBackplane.envelope(fromBody: "1 !!! aGk=") == nil)
    }

    // MARK: Against PostgreSQL

    @Test func twoInstancesExactlyOnceInOrderEverySize() async throws {
        try await withCluster { cluster in
            try await withHubs(cluster, 2) { hubs, backplanes in
                let (one, two) = (hubs[0], hubs[1])
                let a = Recorder(), b = Recorder()
                one.subscribe(a, to: "room", presence: HubPresence(name: "alice", joined: .text("+alice"), left: .text("-alice")))
                two.subscribe(b, to: "room", presence: HubPresence(name: "bob", joined: .text("+bob"), left: .text("-bob")))
                try await until("presence on both") { one.members(of: "room") == ["alice", "bob"] && two.members(of: "room") == ["alice", "bob"] }

                // 300 small messages each way, interleaved: every one arrives once, in order.
                for i in 0..<300 {
                    one.publish(.text("1:\(i)"), to: "room", excluding: a)
                    two.publish(.text("2:\(i)"), to: "room", excluding: b)
                }
                try await until("300 each way") { a.texts.filter { $0.hasPrefix("2:") }.count >= 300 && b.texts.filter { $0.hasPrefix("1:") }.count >= 300 }
                try await Task.sleep(for: .milliseconds(300))
                #expect(a.texts.filter { $0.hasPrefix("2:") } == (0..<300).map { "2:\($0)" })
                #expect(b.texts.filter { $0.hasPrefix("1:") } == (0..<300).map { "1:\($0)" })
                #expect(!a.texts.contains { $0.hasPrefix("1:") }, "own publishes never come back")

                // Both sides of NOTIFY's 8,000-byte limit, and 20,000 bytes; text and binary.
                let limit = PostgresBackplane.notifyLimit
                func notificationSize(_ n: Int, seq: UInt64) -> Int {
                    PostgresBackplane.Outgoing.envelope(seq, HubEnvelope(topic: "room", kind: .binary, payload: ByteBuffer(repeating: 7, count: n)))
                        .notification(from: backplanes[0].instanceID).utf8.count
                }
                let seq = backplanes[0].lastSequence + 1
                let largestInline = (1..<limit).last { notificationSize($0, seq: seq) < limit }!
                #expect(notificationSize(largestInline, seq: seq) >= limit - 4, "as close to the limit as base64 allows")
                #expect(notificationSize(largestInline + 1, seq: seq + 1) >= limit)
                let before = backplanes[0].statistics
                let sizes = [largestInline, largestInline + 1, 20_000]
                b.clear()
                for (i, n) in sizes.enumerated() {
                    var bytes = ByteBuffer(repeating: UInt8(i + 1), count: n)
                    bytes.setInteger(UInt32(n), at: 0)
                    one.publish(.binary(bytes), to: "room")
                }
                one.publish(.text(String(repeating: "é", count: 10_000)), to: "room")
                try await until("the big ones") { b.texts.count >= 4 }
                #expect(b.texts == sizes.enumerated().map { i, n in "binary \(n) bytes of \(i + 1)" } + [String(repeating: "é", count: 10_000)])
                let after = backplanes[0].statistics
                #expect(after.relayedThroughTable - before.relayedThroughTable == 3, "the largest inline one went as a notification, the others through the table")
                #expect(after.relayed - before.relayed == 4)
                #expect(backplanes[1].statistics.receivedThroughTable == 3)
                #expect(backplanes[1].statistics.missed == 0 && backplanes[1].statistics.duplicates == 0)
                #expect(backplanes[0].statistics.notRelayed == 0)
            }
        }
    }

    /// Notifications written by hand (psql, as another instance would): a duplicate is dropped, a
    /// gap is counted, an echo of our own id is ignored, a malformed one is counted.
    @Test func duplicatesGapsEchoesAndNoise() async throws {
        try await withCluster { cluster in
            try await withHubs(cluster, 1) { hubs, backplanes in
                let a = Recorder()
                hubs[0].subscribe(a, to: "t")
                let body = PostgresBackplane.body(HubEnvelope(topic: "t", kind: .text, payload: ByteBuffer(string: "x")))
                func notify(_ kind: String, _ instance: String, _ seq: Int, _ text: String) -> String {
                    let t = kind + " " + instance + " \(seq)" + (text.isEmpty ? "" : " " + text)
                    return "SELECT pg_notify('sockets_hub', '\(t)');"
                }
                let me = backplanes[0].instanceID
                // One transaction each: PostgreSQL itself folds identical notifications of one
                // transaction into one, so the duplicate must come in a transaction of its own.
                try cluster.psql([
                    notify("M", "other", 1, body), notify("M", "other", 1, body),  // a duplicate
                    notify("M", "other", 5, body),                                  // 2, 3, 4 missed
                    notify("M", me, 99, body),                                      // our own echo
                    notify("H", "other", 7, ""),                                    // 6 and 7 missed
                    "SELECT pg_notify('sockets_hub', 'hello');",                    // not ours
                ])
                try await until("two delivered") { a.texts.count >= 2 }
                try await until("heartbeat seen") { backplanes[0].statistics.missed == 5 }
                try await Task.sleep(for: .milliseconds(200))
                let s = backplanes[0].statistics
                #expect(a.texts == ["x", "x"])
                #expect(s.received == 2)
                #expect(s.duplicates == 1)
                #expect(s.missed == 5)
                #expect(s.malformed == 1)
            }
        }
    }

    /// PostgreSQL restarted abruptly: local delivery goes on meanwhile; publishes made during the
    /// outage are counted (not relayed on one side, missed on the other); both reconnect and
    /// cross-instance delivery resumes; presence is repaired.
    @Test func aDatabaseRestartIsSurvivedAndReported() async throws {
        try await withCluster { cluster in
            try await withHubs(cluster, 2) { hubs, backplanes in
                let (one, two) = (hubs[0], hubs[1])
                let a = Recorder(), local = Recorder(), b = Recorder()
                one.subscribe(a, to: "room", presence: HubPresence(name: "alice"))
                one.subscribe(local, to: "room")
                two.subscribe(b, to: "room", presence: HubPresence(name: "bob"))
                one.publish(.text("before"), to: "room", excluding: a)
                try await until("before") { b.texts == ["before"] }

                try cluster.stop(remove: false)
                try await until("both disconnected") { !backplanes[0].isConnected && !backplanes[1].isConnected }
                one.publish(.text("during"), to: "room", excluding: a)
                try await until("local delivery goes on") { local.texts == ["before", "during"] }
                try cluster.start()
                try await until("both connected again") { backplanes[0].isConnected && backplanes[1].isConnected }
                one.publish(.text("after"), to: "room", excluding: a)
                try await until("after") { b.texts.contains("after") }
                try await until("the gap is seen") { backplanes[1].statistics.missed >= 1 }
                #expect(b.texts == ["before", "after"])
                #expect(backplanes[0].statistics.notRelayed >= 1)
                #expect(backplanes[0].statistics.connections == 2 && backplanes[0].statistics.connectionLosses == 1)
                #expect(backplanes[1].statistics.missed >= 1)
                #expect(one.members(of: "room") == ["alice", "bob"])
                #expect(two.members(of: "room") == ["alice", "bob"])
            }
        }
    }

    /// An instance that stops says goodbye: the other announces its members' leaves at once.
    @Test func aStoppedInstanceLeavesAtOnce() async throws {
        try await withCluster { cluster in
            let one = try backplane(cluster)
            let two = try backplane(cluster)
            let hubOne = Hub(backplane: one), hubTwo = Hub(backplane: two)
            let runOne = Task { try await hubOne.run() }
            let runTwo = Task { try await hubTwo.run() }
            defer { runOne.cancel() }
            try await until("connected") { one.isConnected && two.isConnected }
            let a = Recorder(), b = Recorder()
            hubOne.subscribe(a, to: "room", presence: HubPresence(name: "alice"))
            hubTwo.subscribe(b, to: "room", presence: HubPresence(name: "bob", left: .text("-bob")))
            try await until("presence") { hubOne.members(of: "room") == ["alice", "bob"] }
            let stopped = ContinuousClock.now
            runTwo.cancel()
            try await until("bob left") { a.texts == ["-bob"] }
            #expect(ContinuousClock.now - stopped < .seconds(2), "goodbye, not the instance timeout (\(one.configuration.instanceTimeout))")
            #expect(hubOne.members(of: "room") == ["alice"])
        }
    }
}

// MARK: - Helpers

/// A throwaway PostgreSQL cluster (Tests/Interop/pg_cluster.py).
final class Cluster: Sendable {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop/pg_cluster.py").path
    let dir: String
    let url: String

    init() throws {
        let r = try run(["python3", Self.script, "start"])
        guard let json = try? JSONSerialization.jsonObject(with: Data(r.utf8)) as? [String: Any],
              let dir = json["dir"] as? String, let url = json["url"] as? String else {
            throw TestError("pg_cluster.py start printed \(r)")
        }
        self.dir = dir
        self.url = url
    }

    func stop(remove: Bool = true) throws {
        if remove {
            _ = try run(["python3", Self.script, "stop", dir])
        } else {
            _ = try run(["python3", Self.script, "halt", dir])
        }
    }

    func start() throws { _ = try run(["python3", Self.script, "resume", dir]) }

    /// Runs each statement in a transaction of its own, in order.
    func psql(_ statements: [String]) throws {
        _ = try run(["psql", "-v", "ON_ERROR_STOP=1", "-q", url] + statements.flatMap { ["-c", $0] })
    }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs a command to the end; its stdout, or an error with its stderr.
func run(_ arguments: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let stderr = String(decoding: e, as: UTF8.self)
    switch p.terminationStatus {
    case 0: return String(decoding: o, as: UTF8.self)
    case 6: throw TestError("PostgreSQL is not installed (apt-get install postgresql; scripts/deps.sh does): \(stderr)")
    case 127: throw TestError("\(arguments[0]) is not installed: \(stderr)")
    default: throw TestError("\(arguments.joined(separator: " ")) exited with \(p.terminationStatus): \(stderr)")
    }
}

func withCluster(_ body: (Cluster) async throws -> Void) async throws {
    let cluster = try Cluster()
    do {
        try await body(cluster)
    } catch {
        try? cluster.stop()
        throw error
    }
    try cluster.stop()
}

func backplane(_ cluster: Cluster) throws -> PostgresBackplane {
    var c = try PostgresBackplane.Configuration(url: cluster.url)
    c.heartbeatInterval = .milliseconds(200)
    c.instanceTimeout = .seconds(2)
    c.reconnectDelay = .milliseconds(50) ... .milliseconds(400)
    var logger = Logger(label: "test.backplane")
    logger.logLevel = .warning
    return try PostgresBackplane(configuration: c, logger: logger)
}

/// `n` hubs, each with its backplane running, connected before `body` starts.
func withHubs(_ cluster: Cluster, _ n: Int, _ body: ([Hub], [PostgresBackplane]) async throws -> Void) async throws {
    let backplanes = try (0..<n).map { _ in try backplane(cluster) }
    let hubs = backplanes.map { Hub(backplane: $0) }
    let tasks = hubs.map { hub in Task { try await hub.run() } }
    defer { for t in tasks { t.cancel() } }
    try await until("connected") { backplanes.allSatisfy(\.isConnected) }
    try await body(hubs, backplanes)
}

/// Polls `condition` every 10 ms for up to 15 s.
func until(_ what: String, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(15)
    while ContinuousClock.now < deadline {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw TestError("timed out waiting for \(what)")
}

/// A subscriber that records what it is sent.
final class Recorder: HubSubscriber {
    private let received = Mutex<[PreparedMessage]>([])
    func send(_ prepared: PreparedMessage) async throws { received.withLock { $0.append(prepared) } }
    func disconnect(_ code: CloseCode, reason: String) async {}
    var done: CloseResult { get async { await withUnsafeContinuation { (_: UnsafeContinuation<CloseResult, Never>) in } } }
    func clear() { received.withLock { $0 = [] } }
    /// Texts as they are; binary as "binary N bytes of B" (N from the first 4 bytes, which must
    /// match the length, and B the fill byte, which must fill the rest).
    var texts: [String] {
        received.withLock { $0 }.map { m in
            switch m.frame {
            case .text(let b): return String(buffer: b)
            case .binary(let b):
                let n = Int(b.getInteger(at: b.readerIndex, as: UInt32.self) ?? 0)
                let fill = b.readableBytesView.dropFirst(4)
                guard n == b.readableBytes, let first = fill.first, fill.allSatisfy({ $0 == first }) else { return "binary corrupted (\(b.readableBytes) bytes)" }
                return "binary \(n) bytes of \(first)"
            default: return "?"
            }
        }
    }
}
