import Dispatch
import Foundation
import Synchronization
import Testing

/// The chat example, `sockets-chat`, tested as its users meet it: the built executable is started
/// on 127.0.0.1 (a free port) by a Python peer in Tests/Interop/chat_*.py, which plays a scenario
/// with independent clients (Python `websockets`, raw sockets, headless Chromium through
/// Selenium) and prints one JSON object with what it observed. The assertions are all here.
///
/// Each test fails (never skips) when what it needs is missing: python3, websockets, selenium,
/// chromium or chromedriver, openssl (`.ci/run` installs them), or the `sockets-chat` executable
/// next to the test binary (`swift build --build-tests` builds it).
///
/// Serialized: the load and browser scenarios need the machine's two cores to themselves.
@Suite(.serialized)
struct ChatTests {
    // MARK: Rooms

    /// Two rooms: joins and leaves are announced to the others, messages go both ways to every
    /// other client of the room only, never back to the sender, the server sets `typ` and `from`
    /// itself (a forged sender or a forged status is ignored), a message that is not JSON or has
    /// no text is skipped without closing the connection, and names with spaces, non-ASCII
    /// characters and an encoded `/` work. An over-long name is refused with 1008.
    @Test func roomsAndNotices() async throws {
        let r = try await ChatScript.run("chat_rooms.py", ["rooms"])
        for (label, ok) in r["waits"].object {
            #expect(ok.bool == true, "timed out waiting: \(label)")
        }
        // Two clients opened one after the other join in either order (see chat_rooms.py): the
        // one that was in first sees the other's join, and only that one.
        for (a, b) in [("alice", "bob"), ("carol", "dave"), ("zoë ✓", "yan lee")] {
            let joins = [r[a].rows.filter { $0 == ["status", b, "joined"] }.count, r[b].rows.filter { $0 == ["status", a, "joined"] }.count]
            #expect(joins.sorted() == [0, 1], "\(a)/\(b): exactly one join notice between them: \(r[a]) \(r[b])")
        }
        #expect(r["alice"].rows.withoutJoins == [["message", "bob", "hi alice"], ["status", "bob", "left"]], "\(r["alice"])")
        #expect(r["bob"].rows.withoutJoins == [["message", "alice", "hello bob"], ["message", "alice", "still here"]], "\(r["bob"])")
        #expect(r["carol"].rows.withoutJoins == [["message", "dave", "left"]], "\(r["carol"])")
        #expect(r["dave"].rows.withoutJoins == [["message", "carol", "garden only"]], "\(r["dave"])")
        #expect(r["zoë ✓"].rows.withoutJoins == [["message", "yan lee", "grüße 🌍"]], "\(r["zoë ✓"])")
        #expect(r["yan lee"].rows.withoutJoins == [], "\(r["yan lee"])")
        // Each client's first message is the member list, itself included (and the other of its
        // pair when that one was in first).
        for (a, b) in [("alice", "bob"), ("carol", "dave"), ("zoë ✓", "yan lee")] {
            let lists = [r[a].rows.first, r[b].rows.first]
            #expect(lists.allSatisfy { $0?.first == "members" }, "\(a)/\(b): \(lists)")
            let names = lists.map { Set(($0?.last ?? "").split(separator: ",").map(String.init)) }
            #expect(names.contains([a]) || names.contains([b]), "\(a)/\(b): one of them was in first: \(lists)")
            #expect(names.contains([a, b]), "\(a)/\(b): the second sees both: \(lists)")
        }
        #expect(r["invalid_name"]["close_code"].int == 1008, "\(r["invalid_name"])")
        #expect(r["server_exit"].int == 0, "the server did not stop cleanly on SIGTERM: \(r["server_log_tail"])")
    }

    // MARK: Origin check

    /// The socket route keeps the default options: a page from the same host may connect; a
    /// foreign Origin (even on the same port) or none at all is refused with 403.
    @Test func originCheck() async throws {
        let r = try await ChatScript.run("chat_rooms.py", ["origin"])
        #expect(r["same_host"]["status"].int == 101, "\(r)")
        #expect(r["foreign"]["status"].int == 403, "\(r)")
        #expect(r["foreign_same_port"]["status"].int == 403, "\(r)")
        #expect(r["missing"]["status"].int == 403, "\(r)")
    }

    // MARK: Pages

    /// The index page, the room page (for any room name), and the assets, served by the static
    /// middleware with their content types; no page loads anything from another site; a path
    /// that climbs out of the folder gets 404.
    @Test func pagesAndAssets() async throws {
        let r = try await ChatScript.run("chat_rooms.py", ["pages"])
        func expectPage(_ path: String, _ status: Int, _ type: String?, contains: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) {
            let p = r[path]
            #expect(p["status"].int == status, "\(path): \(p["status"])", sourceLocation: sourceLocation)
            if let type { #expect(p["content_type"].string == type, "\(path)", sourceLocation: sourceLocation) }
            for s in contains {
                #expect(p["body"].string?.contains(s) == true, "\(path) should contain \(s)", sourceLocation: sourceLocation)
            }
        }
        let html = "text/html; charset=utf-8"
        expectPage("/", 200, html, contains: ["id=\"join\"", "/index.js", "/chat.css"])
        expectPage("/rooms/lobby", 200, html, contains: ["id=\"messages\"", "id=\"state\"", "/room.js"])
        expectPage("/rooms/caf%C3%A9%2F2", 200, html, contains: ["/room.js"])
        expectPage("/room.html", 200, html)
        expectPage("/chat.css", 200, "text/css; charset=utf-8", contains: ["#state"])
        expectPage("/room.js", 200, "text/javascript; charset=utf-8", contains: ["new WebSocket", "/sockets/rooms/"])
        expectPage("/index.js", 200, "text/javascript; charset=utf-8")
        expectPage("/favicon.svg", 200, "image/svg+xml")
        expectPage("/nope.html", 404, nil)
        expectPage("/rooms/lobby/extra", 404, nil)
        expectPage("/../Package.swift", 404, nil)
        expectPage("/%2e%2e/Package.swift", 404, nil)
        #expect(r["/../Package.swift"]["body"].string?.contains("PackageDescription") == false)
        // No CDN, no build step: every page refers to its own server only.
        for page in ["/", "/rooms/lobby"] {
            let body = r[page]["body"].string ?? ""
            #expect(!body.contains("src=\"http") && !body.contains("href=\"http") && !body.contains("//cdn"), "\(page) loads from elsewhere")
        }
    }

    // MARK: A slow client

    /// A client that stops reading must not stall its room. With a 64-message outbox, Bob sends
    /// 400 messages of 32 KB at a pace Alice follows; "slowpoke" reads nothing, so its TCP
    /// buffers and then its outbox fill. Alice must get all 400 in order while that happens;
    /// slowpoke is dropped (its leave announced) and the room goes on working.
    @Test func slowClientDoesNotStallRoom() async throws {
        let r = try await ChatScript.run("chat_rooms.py", ["slow", "--server-arg=--client-queue", "--server-arg=64", "--count", "400", "--size", "32000"])
        #expect(r["slow_handshake"].int == 101, "\(r)")
        for (label, ok) in r["waits"].object {
            #expect(ok.bool == true, "timed out waiting: \(label) \(r["alice_status"])")
        }
        #expect(r["alice_received"].int == 400, "\(r)")
        #expect(r["alice_in_order"].bool == true, "\(r)")
        print("ChatTests slow client: Bob sent 400 x 32 KB in \(r["bob_send_seconds"]) s; Alice had them all after \(r["alice_seconds"]) s; slowpoke dropped by \(r["slowpoke_left_after"]) s and had read \(r["slowpoke"]["bytes_read"]) bytes")
    }

    // MARK: Load

    /// 200 clients in one room (in 2 client processes). After a warm-up message proves everyone is
    /// in, 20 probes from one client measure idle-room latency, then every client sends a message
    /// at the same moment: each probe and each of the 200 messages must reach each of the 199
    /// others exactly once (39 800 burst deliveries), never return to its sender, and carry the
    /// sender's real name. Latencies and throughput are printed, not asserted: this is a debug
    /// build (NIO's debug checks included) on a shared two-core machine, so one message per
    /// client keeps the test near 25 s. The README's messages/s figure comes from
    /// Benchmarks/chat-load.sh, a release build.
    @Test func twoHundredClientsInOneRoom() async throws {
        let clients = 200, messages = 1
        let r = try await ChatScript.run("chat_load.py", ["--clients", "\(clients)", "--messages", "\(messages)", "--processes", "2", "--timeout", "60"], timeout: 240)
        #expect(r["warm_ok"].bool == true, "not every client got the warm-up message: \(r)")
        #expect(r["probe_ok"].bool == true, "\(r)")
        #expect(r["burst_ok"].bool == true, "the burst did not complete: \(r)")
        #expect(r["expected"].int == clients * (clients - 1) * messages)
        #expect(r["received"].int == clients * (clients - 1) * messages, "\(r)")
        #expect(r["missing"].int == 0, "\(r)")
        #expect(r["duplicates"].int == 0, "\(r)")
        #expect(r["from_self"].int == 0, "a sender got its own message back: \(r)")
        #expect(r["wrong_from"].int == 0, "the server must set `from`: \(r)")
        #expect(r["unexpected"].int == 0, "\(r)")
        #expect(r["probe_missing"].int == 0 && r["probe_duplicates"].int == 0, "\(r)")
        #expect(r["closed_early"].array.isEmpty, "clients were disconnected: \(r["closed_early"])")
        print("""
        ChatTests load: \(clients) clients, connected in \(r["connect_seconds"]) s; \(r["received"]) deliveries in \(r["burst_seconds"]) s \
        (\(r["messages_per_second"]) messages/s in, \(r["deliveries_per_second"]) deliveries/s out; debug build)
          idle room, send -> recipient ms: \(r["probe_latency_ms"]); send -> last of 199 recipients ms: \(r["probe_fanout_ms"])
          under the burst, send -> recipient ms: \(r["burst_latency_ms"])
        """)
    }

    // MARK: Across instances

    /// Two sockets-chat instances on one PostgreSQL (a throwaway cluster made by the script):
    /// clients on both, member lists across instances, every message to every other member
    /// exactly once and in order per sender, 20,000 bytes across, a PostgreSQL restart (local
    /// delivery goes on, cross-instance delivery resumes, the gap is reported), and one instance
    /// killed (the other's members see the leaves).
    @Test func twoInstancesThroughPostgres() async throws {
        let r = try await ChatScript.run("chat_cluster.py", ["--messages", "20"], timeout: 180)
        let everyone = ["alice", "bob", "carol", "dave"]
        for name in everyone {
            #expect(r["members"][name].array.compactMap(\.string) == everyone, "\(name): \(r["members"])")
            #expect(r["in_order_exactly_once"][name].bool == true, "\(name): \(r["deliveries"])")
        }
        #expect(r["all_delivered"].bool == true, "\(r["deliveries"])")
        #expect(r["own_echoes"].int == 0)
        #expect(r["big_intact"].bool == true && r["big_bytes"].int == 20_000)
        #expect(r["local_during_outage"].bool == true)
        #expect(r["resumed"].bool == true)
        #expect(r["outage_crossed"].bool == false, "what was published during the outage is not relayed")
        #expect((r["stats_a"]["backplane"]["notRelayed"].int ?? 0) >= 1, "\(r["stats_a"])")
        #expect((r["stats_b"]["backplane"]["notRelayed"].int ?? 0) >= 1, "\(r["stats_b"])")
        #expect((r["stats_a"]["backplane"]["missed"].int ?? 0) >= 1, "the gap is reported: \(r["stats_a"])")
        #expect((r["stats_b"]["backplane"]["missed"].int ?? 0) >= 1, "the gap is reported: \(r["stats_b"])")
        #expect(r["stats_a"]["backplane"]["connections"].int == 2)
        #expect((r["stats_b"]["backplane"]["receivedThroughTable"].int ?? 0) >= 1, "the 20,000 bytes went through the table")
        #expect(r["stats_a"]["backplane"]["duplicates"].int == 0 && r["stats_b"]["backplane"]["duplicates"].int == 0)
        #expect(r["members_after_kill"]["alice"].array.compactMap(\.string) == ["alice", "bob"], "\(r["members_after_kill"])")
        #expect(r["members_after_kill"]["bob"].array.compactMap(\.string) == ["alice", "bob"], "\(r["members_after_kill"])")
        #expect(r["server_a_exit"].int == 0, "\(r["server_a_log_tail"])")
        print("ChatTests cluster: 4 clients x 20 messages across 2 instances in \(r["burst_seconds"]) s; leaves seen \(r["leaves_seen_after"]) s after the kill")
    }

    /// A bad --backplane URL is refused before anything starts, naming what is wrong.
    @Test func badBackplaneURL() async throws {
        let r = ScriptResult.run([try ChatScript.chatBinary(), "--backplane", "http://user@host/db"], timeout: 30)
        #expect(r.status == 64, "ArgumentParser's validation exit code")
        #expect(String(decoding: r.stderr, as: UTF8.self).contains("--backplane: unsupported-scheme"), "\(String(decoding: r.stderr, as: UTF8.self))")
        let help = ScriptResult.run([try ChatScript.chatBinary(), "--help"], timeout: 30)
        #expect(help.status == 0)
        let text = String(decoding: help.stdout, as: UTF8.self)
        for option in ["--host", "--port", "--public", "--client-queue", "--quiet", "--backplane"] {
            #expect(text.contains(option), "--help lists \(option): \(text)")
        }
    }

    // MARK: Browser

    /// Headless Chromium: Alice (through the index form) and Bob in "lobby", Carol in "garden".
    /// Each page shows the join notice, the messages both ways (HTML in a message shown as text),
    /// nothing from the other room; after a server restart every page says it is disconnected,
    /// then reconnects by itself and messages flow again; closing Bob's tab shows Alice his
    /// leave. Screenshots go to $TEST_OUTPUT_DIR (default <package>/test-output/).
    @Test func browser() async throws {
        let output = ChatScript.outputDirectory
        let r = try await ChatScript.run("chat_browser.py", ["--output", output], timeout: 240)
        for step in r["steps"].array {
            #expect(step.array.last?.bool == true, "browser step failed: \(step.array.first?.string ?? "?")\n\(r["server_log_tail"])")
        }
        #expect(r["steps"].array.count == 16, "the scenario stopped early: \(r["steps"])")
        let before = r["before_restart"]
        // Whichever of Alice and Bob was in the room first saw the other join (in practice
        // Alice, who came first; see chat_browser.py).
        let joins = [before["alice"].rows.filter { $0 == ["status", "bob", "joined"] }.count,
                     before["bob"].rows.filter { $0 == ["status", "alice", "joined"] }.count]
        #expect(joins.sorted() == [0, 1], "exactly one join notice between Alice and Bob: \(before)")
        #expect(before["alice"].rows.withoutJoins == [
            ["system", "", "You joined #lobby as alice."],
            ["mine", "alice", "Hello Bob! <b>not bold</b>"],
            ["message", "bob", "Hi Alice, all good here."],
        ], "\(before["alice"])")
        #expect(before["bob"].rows.withoutJoins == [
            ["system", "", "You joined #lobby as bob."],
            ["message", "alice", "Hello Bob! <b>not bold</b>"],
            ["mine", "bob", "Hi Alice, all good here."],
        ], "\(before["bob"])")
        #expect(before["carol"].rows == [
            ["system", "", "You joined #garden as carol."],
            ["mine", "carol", "Anyone in the garden?"],
        ], "\(before["carol"])")
        // The markup in Alice's message is shown as text, not interpreted.
        #expect(r["alice_text"].string?.contains("Hello Bob! <b>not bold</b>") == true, "\(r["alice_text"])")
        #expect(r["alice_url"].string?.hasSuffix("/rooms/lobby?name=alice") == true, "\(r["alice_url"])")
        #expect(r["title"].string == "#lobby · Sockets chat")

        for page in ["alice", "bob", "carol"] {
            #expect(r["states_while_down"][page].string == "disconnected", "\(page): \(r["states_while_down"])")
            #expect(r["after_restart"][page].rows.contains(["system", "", "Reconnected."]), "\(page): \(r["after_restart"][page])")
        }
        #expect(r["after_restart"]["bob"].rows.contains(["message", "alice", "Still there after the restart?"]))
        #expect(r["after_bob_left"]["alice"].rows == [["status", "bob", "left"]], "\(r["after_bob_left"])")
        // The member list in the header: who is in the room, kept up to date by the notices.
        #expect(r["members_before_restart"]["alice"].array.first?.array.compactMap(\.string) == ["alice", "bob"], "\(r["members_before_restart"])")
        #expect(r["members_before_restart"]["bob"].array.first?.array.compactMap(\.string) == ["alice", "bob"], "\(r["members_before_restart"])")
        #expect(r["members_before_restart"]["carol"].array.first?.array.compactMap(\.string) == ["carol"], "\(r["members_before_restart"])")
        #expect(r["members_before_restart"]["alice"].array.last?.string == "2 here: alice, bob", "\(r["members_before_restart"])")
        #expect(r["members_after_bob_left"].array.first?.array.compactMap(\.string) == ["alice"], "\(r["members_after_bob_left"])")
        // Nothing crossed between rooms, at any time.
        let carolSaw = r["final"]["carol"].rows.filter { $0.first == "message" || $0.first == "status" }
        #expect(carolSaw.isEmpty, "garden got lobby traffic: \(carolSaw)")
        #expect(!r["final"]["alice"].rows.contains { $0[1] == "carol" || $0[2].contains("garden?") }, "lobby got garden traffic: \(r["final"]["alice"])")

        for shot in ["chat-index.png", "chat-room.png", "chat-room-after.png"] {
            let path = output + "/" + shot
            let data = FileManager.default.contents(atPath: path) ?? Data()
            #expect(data.count > 5000 && data.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(path) is not a screenshot")
        }
        print("ChatTests browser: Chromium \(r["browser_version"]); screenshots in \(output)")
    }

    /// The chat over https:// and wss:// with a certificate made now (TestPKI): sockets-chat
    /// serves it (--tls-cert, --tls-key); one headless Chromium trusts exactly that key (its
    /// SPKI hash in --ignore-certificate-errors-spki-list, nothing else ignored). Alice and Bob,
    /// in two tabs, get each other's message; each page was loaded over https:// and opened one
    /// WebSocket, to wss://. A Chromium without the flag refuses the page (unknown CA).
    @Test func browserOverTLS() async throws {
        let pki = try TestPKI.make()
        defer { try? FileManager.default.removeItem(atPath: pki.dir) }
        let r = try await ChatScript.run("chat_browser.py", ["--output", ChatScript.outputDirectory,
                                                             "--tls-cert", pki.certificate, "--tls-key", pki.key], timeout: 60)
        for step in r["steps"].array {
            #expect(step.array.last?.bool == true, "browser step failed: \(step.array.first?.string ?? "?")\n\(r["server_log_tail"])")
        }
        #expect(r["steps"].array.count == 5, "the scenario stopped early: \(r["steps"])")
        let base = r["base"].string ?? ""
        #expect(base.hasPrefix("https://127.0.0.1:"), "\(base)")
        let wssBase = "wss://" + base.dropFirst("https://".count)
        for name in ["alice", "bob"] {
            let tab = r["tabs"][name]
            #expect(tab["url"].string == "\(base)/rooms/lobby?name=\(name)", "\(tab)")
            #expect(tab["protocol"].string == "https:", "\(tab)")
            #expect(tab["state"].string == "connected", "\(tab)")
            #expect(tab["websockets"].array.compactMap(\.string) == ["\(wssBase)/sockets/rooms/lobby/\(name)"], "\(tab)")
        }
        #expect(r["tabs"]["alice"]["items"].rows.withoutJoins == [
            ["system", "", "You joined #lobby as alice."],
            ["mine", "alice", "Hello Bob, over wss"],
            ["message", "bob", "Hi Alice, encrypted too"],
        ], "\(r["tabs"]["alice"])")
        #expect(r["tabs"]["bob"]["items"].rows.withoutJoins == [
            ["system", "", "You joined #lobby as bob."],
            ["message", "alice", "Hello Bob, over wss"],
            ["mine", "bob", "Hi Alice, encrypted too"],
        ], "\(r["tabs"]["bob"])")
        let untrusted = r["untrusted"]
        #expect(untrusted["has_chat"].bool == false, "a browser without the key's hash showed the chat: \(untrusted)")
        let refusal = (untrusted["error"].string ?? "") + (untrusted["text"].string ?? "")
        #expect(refusal.contains("ERR_CERT_AUTHORITY_INVALID"), "\(untrusted)")
        #expect(r["server_exit"].int == 0, "\(r["server_log_tail"])")
        print("ChatTests browser over TLS: Chromium \(r["browser_version"]), key pinned by SPKI sha256 \(r["spki_sha256"])")
    }
}

// MARK: - Running the scenarios

struct ChatScriptError: Error, CustomStringConvertible {
    let description: String
}

enum ChatScript {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let interop = packageRoot + "/Tests/Interop"

    /// Where screenshots go: $TEST_OUTPUT_DIR, or `<package root>/test-output`.
    static var outputDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["TEST_OUTPUT_DIR"], !dir.isEmpty { return dir }
        return packageRoot + "/test-output"
    }

    /// The `sockets-chat` executable built with the tests: it sits next to the test binary
    /// (with its resource bundle). $SOCKETS_CHAT_BIN overrides.
    static func chatBinary() throws -> String {
        if let bin = ProcessInfo.processInfo.environment["SOCKETS_CHAT_BIN"], !bin.isEmpty { return bin }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var candidates = [me.deletingLastPathComponent().appendingPathComponent("sockets-chat").path]
        if let exe = Bundle.main.executableURL {
            candidates.append(exe.deletingLastPathComponent().appendingPathComponent("sockets-chat").path)
        }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("sockets-chat").path)
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        throw ChatScriptError(description: "sockets-chat was not found next to the test binary (\(candidates)); build it with `swift build --build-tests` or set SOCKETS_CHAT_BIN")
    }

    /// Runs one scenario script against a fresh sockets-chat and returns its JSON. Throws (so
    /// the test fails) when a tool is missing, the script fails, or it reports an exception.
    static func run(_ script: String, _ args: [String], timeout: Double = 120) async throws -> ChatJSON {
        let arguments = ["python3", interop + "/" + script] + args + ["--server", try chatBinary()]
        let result = await withCheckedContinuation { (c: CheckedContinuation<ScriptResult, Never>) in
            // Blocking waits on a thread of their own, not on the concurrency pool.
            Thread.detachNewThread { c.resume(returning: ScriptResult.run(arguments, timeout: timeout)) }
        }
        let stderr = String(decoding: result.stderr, as: UTF8.self)
        if let e = result.launchError { throw ChatScriptError(description: "could not start python3: \(e)") }
        switch result.status {
        case 0: break
        case 127: throw ChatScriptError(description: "python3 is not installed: \(stderr)")
        case 3: throw ChatScriptError(description: "the Python package websockets is missing (pip install websockets): \(stderr)")
        case 4: throw ChatScriptError(description: "the Python package selenium is missing (pip install selenium): \(stderr)")
        case 5: throw ChatScriptError(description: "chromium or chromedriver is missing (apt-get install chromium chromium-driver): \(stderr)")
        case 6: throw ChatScriptError(description: "PostgreSQL is missing (apt-get install postgresql): \(stderr)")
        default:
            throw ChatScriptError(description: "\(script) exited with \(result.status)\(result.timedOut ? " (killed after \(timeout) s)" : ""): \(stderr)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: result.stdout), object is [String: Any] else {
            throw ChatScriptError(description: "\(script) printed no JSON object: \(String(decoding: result.stdout, as: UTF8.self)) \(stderr)")
        }
        let json = ChatJSON(value: object)
        if let e = json["exception"].string {
            throw ChatScriptError(description: "\(script) raised \(e)\n\(json["traceback"].string ?? "")\nserver log:\n\(json["server_log_tail"].string ?? "")")
        }
        return json
    }
}

extension [[String]] {
    /// The rows without join notices and member lists.
    var withoutJoins: [[String]] { filter { !($0.first == "status" && $0.last == "joined") && $0.first != "members" } }
}

/// A read-only view of a script's JSON (`JSONSerialization` output).
struct ChatJSON: @unchecked Sendable, CustomStringConvertible {
    let value: Any?

    subscript(_ key: String) -> ChatJSON { ChatJSON(value: (value as? [String: Any])?[key]) }

    var string: String? { value as? String }
    var bool: Bool? { value as? Bool }
    var int: Int? {
        if let i = value as? Int { return i }
        if let d = value as? Double, d == d.rounded() { return Int(d) }
        return nil
    }
    var array: [ChatJSON] { (value as? [Any])?.map { ChatJSON(value: $0) } ?? [] }
    var object: [(String, ChatJSON)] {
        ((value as? [String: Any]) ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, ChatJSON(value: $0.value)) }
    }
    /// An array of arrays of strings (message lists), `"<null>"` for a null.
    var rows: [[String]] { array.map { $0.array.map { $0.string ?? "<null>" } } }

    var description: String {
        guard let value else { return "nil" }
        if let s = value as? String { return s }
        guard JSONSerialization.isValidJSONObject(value),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) else {
            return String(describing: value)
        }
        let text = String(decoding: data, as: UTF8.self)
        return text.count > 2000 ? String(text.prefix(2000)) + "…" : text
    }
}

