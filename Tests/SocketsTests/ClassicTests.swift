import Foundation
import Logging
import Sockets
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Classic: request logging, recovery and static files, over real HTTP on 127.0.0.1 (the request
/// targets are written by hand, byte for byte, so that no client library normalises `..` or
/// percent escapes away before the server sees them).
@Suite struct ClassicTests {
    // MARK: Static files

    /// Every extension the middleware knows gets its content type, and the body is the file's
    /// exact bytes (binary included).
    @Test func contentTypes() async throws {
        let site = try Site()
        try await site.withApp { port in
            let cases: [(String, String, String)] = [
                ("/index.html", "index.html", "text/html; charset=utf-8"),
                ("/app.css", "app.css", "text/css; charset=utf-8"),
                ("/app.js", "app.js", "text/javascript; charset=utf-8"),
                ("/data.json", "data.json", "application/json"),
                ("/pic.png", "pic.png", "image/png"),
                ("/icon.svg", "icon.svg", "image/svg+xml"),
                ("/favicon.ico", "favicon.ico", "image/x-icon"),
                ("/notes.txt", "notes.txt", "text/plain; charset=utf-8"),
                ("/UPPER.HTML", "UPPER.HTML", "text/html; charset=utf-8"),
                ("/blob.bin", "blob.bin", "application/octet-stream"),
                ("/sub/page.html", "sub/page.html", "text/html; charset=utf-8"),
                ("/link-in", "app.css", "application/octet-stream"),
                ("/with%20space.txt", "with space.txt", "text/plain; charset=utf-8"),
            ]
            for (target, file, type) in cases {
                let r = try await RawHTTP.get(port, target)
                #expect(r.status == 200, "\(target): \(r.status)")
                #expect(r.header("content-type") == type, "\(target)")
                #expect(r.header("x-content-type-options") == "nosniff", "\(target)")
                #expect(r.body == site.bytes(of: file), "\(target): body differs from \(file)")
            }
        }
    }

    /// HEAD answers the headers of GET (Content-Length included) without a body; other methods
    /// pass on (no route here, so 404), and the query string is ignored.
    @Test func methods() async throws {
        let site = try Site()
        try await site.withApp { port in
            let size = site.bytes(of: "app.css").count
            let head = try await RawHTTP.request(port, "HEAD", "/app.css")
            #expect(head.status == 200)
            #expect(head.header("content-length") == "\(size)")
            #expect(head.header("content-type") == "text/css; charset=utf-8")
            #expect(head.body.isEmpty)
            let post = try await RawHTTP.request(port, "POST", "/app.css")
            #expect(post.status == 404, "POST must not be served from the folder")
            let query = try await RawHTTP.get(port, "/app.css?v=3")
            #expect(query.status == 200 && query.body == site.bytes(of: "app.css"))
        }
    }

    /// A directory answers with its index; without a trailing slash it is redirected first
    /// (keeping the query); a missing file passes on to the routes, then the app's 404.
    @Test func directoriesAndFallThrough() async throws {
        let site = try Site()
        try await site.withApp { port in
            let root = try await RawHTTP.get(port, "/")
            #expect(root.status == 200 && root.body == site.bytes(of: "index.html"))
            #expect(root.header("content-type") == "text/html; charset=utf-8")

            let sub = try await RawHTTP.get(port, "/sub")
            #expect(sub.status == 301)
            #expect(sub.header("location") == "/sub/")
            let subQuery = try await RawHTTP.get(port, "/sub?room=a")
            #expect(subQuery.header("location") == "/sub/?room=a")
            let subIndex = try await RawHTTP.get(port, "/sub/")
            #expect(subIndex.status == 200 && subIndex.body == site.bytes(of: "sub/index.html"))

            // A directory named like the index file is not an index, and must not loop.
            let noIndex = try await RawHTTP.get(port, "/noindex/")
            #expect(noIndex.status == 404)
            // A file asked for as a directory is not found.
            let fileSlash = try await RawHTTP.get(port, "/app.css/")
            #expect(fileSlash.status == 404)

            let route = try await RawHTTP.get(port, "/rooms/lobby")
            #expect(route.status == 200 && route.text == "room lobby", "a route behind the static middleware still answers")
            let missing = try await RawHTTP.get(port, "/nope.html")
            #expect(missing.status == 404 && missing.text == "404 page not found")
        }
    }

    /// Path traversal in every spelling: raw `..`, encoded dots, encoded slashes and backslashes,
    /// double encoding, NUL, hidden files, a symlink out of the folder, absolute paths. Each must
    /// answer 400, 403 or 404, and no answer may contain any byte of the files outside the folder.
    @Test func pathTraversal() async throws {
        let site = try Site()
        try await site.withApp { port in
            let attempts = [
                "/../Package.swift", "/../secret.txt", "/sub/../../Package.swift", "/./../Package.swift",
                "/%2e%2e/Package.swift", "/%2E%2E/secret.txt", "/.%2e/Package.swift", "/%2e./secret.txt",
                "/sub/%2e%2e/%2e%2e/Package.swift",
                "/..%2fPackage.swift", "/..%2FPackage.swift", "/%2e%2e%2fPackage.swift", "/sub%2f..%2f..%2fPackage.swift",
                "/%2f..%2fPackage.swift", "/..%5cPackage.swift", "/%2e%2e%5cPackage.swift", "/..%5c..%5csecret.txt",
                "/%252e%252e/Package.swift", "/%252e%252e%252fPackage.swift",
                "//../Package.swift", "///..//..//Package.swift",
                "/app.css%00.txt", "/%00", "/sub%00/page.html",
                "/.secret", "/%2esecret", "/sub/.hidden", "/link-out", "/link-out-dir/secret.txt",
                "/etc/passwd", "//etc/passwd", "/%2fetc%2fpasswd", "/%2Fetc/passwd",
                "/%zz", "/%2", "/..", "/sub/..", "/sub/%2e%2e",
            ]
            for target in attempts {
                let r = try await RawHTTP.get(port, target)
                #expect([400, 403, 404].contains(r.status), "\(target): status \(r.status)")
                for marker in Site.markers {
                    #expect(!r.text.contains(marker), "\(target) leaked \(marker)")
                }
                #expect(!r.text.contains("root:"), "\(target) leaked /etc/passwd")
            }
        }
    }

    /// A FIFO or device inside the folder is not a file to serve, and opening it must not hang.
    @Test func specialFilesAreNotServed() async throws {
        let site = try Site()
        #expect(mkfifo(site.public + "/pipe", 0o644) == 0)
        try await site.withApp { port in
            let r = try await RawHTTP.get(port, "/pipe")
            #expect(r.status == 404)
        }
    }

    /// `prefix` mounts the folder under a path; nothing outside it is served from the folder.
    @Test func prefix() async throws {
        let site = try Site()
        try await site.withApp(prefix: "/assets") { port in
            let css = try await RawHTTP.get(port, "/assets/app.css")
            #expect(css.status == 200 && css.body == site.bytes(of: "app.css"))
            #expect(try await RawHTTP.get(port, "/app.css").status == 404)
            #expect(try await RawHTTP.get(port, "/assetsx/app.css").status == 404)
            #expect(try await RawHTTP.get(port, "/assets/../assets/app.css").status == 404)
            let bare = try await RawHTTP.get(port, "/assets")
            #expect(bare.status == 301 && bare.header("location") == "/assets/")
            let index = try await RawHTTP.get(port, "/assets/")
            #expect(index.status == 200 && index.body == site.bytes(of: "index.html"))
        }
    }

    /// A file over maxFileSize is refused with an error (500 after recovery, logged), never read
    /// whole; the server serves the next request normally.
    @Test func fileTooLarge() async throws {
        let site = try Site()
        try Data(repeating: 0x41, count: 1025).write(to: URL(fileURLWithPath: site.public + "/big.bin"))
        try await site.withApp(maxFileSize: 1024) { port in
            let big = try await RawHTTP.get(port, "/big.bin")
            #expect(big.status == 500)
            #expect(big.text == "500 internal server error\n")
            let ok = try await RawHTTP.get(port, "/app.css")
            #expect(ok.status == 200)
            #expect(site.log.messages(.error).contains { $0.contains("big.bin") && $0.contains("1024-byte limit") }, "\(site.log.all)")
        }
    }

    /// Issue #11, item 3: `maxFileSize: .max` means "no limit"; serving a file must not overflow
    /// (`limit + 1` trapped, killing the process). The file is served whole, and so is the next.
    @Test func maxFileSizeAtIntMaxServesFiles() async throws {
        let site = try Site()
        try Data(repeating: 0x42, count: 70_000).write(to: URL(fileURLWithPath: site.public + "/big.bin"))
        try await site.withApp(maxFileSize: .max) { port in
            let big = try await RawHTTP.get(port, "/big.bin")
            #expect(big.status == 200)
            #expect(big.body.count == 70_000)
            let ok = try await RawHTTP.get(port, "/app.css")
            #expect(ok.status == 200)
        }
    }

    // MARK: Recovery

    /// A thrown error answers 500 with a one-line body, the error is logged, and the same
    /// keep-alive connection then serves the next (pipelined) request.
    @Test func recoveryKeepsServing() async throws {
        let site = try Site()
        try await site.withApp { port in
            let rs = try await RawHTTP.pipeline(port, [("GET", "/boom"), ("GET", "/ok"), ("GET", "/boom"), ("GET", "/app.css")])
            #expect(rs.map(\.status) == [500, 200, 500, 200])
            #expect(rs[0].text == "500 internal server error\n")
            #expect(!rs[0].text.contains("kaboom"), "the error's text must not reach the client")
            #expect(rs[1].text == "ok")
            let recovered = site.log.messages(.error).filter { $0.contains("GET /boom") && $0.contains("kaboom") }
            #expect(recovered.count == 2, "\(site.log.all)")
            // And a new connection still works.
            #expect(try await RawHTTP.get(port, "/ok").text == "ok")
        }
    }

    // MARK: Logger

    /// One line per request: `METHOD PATH STATUS N.NNms`, the path without its query; with
    /// recovery inside the logger the 500 is logged as a 500.
    @Test func loggerLineFormat() async throws {
        let site = try Site()
        try await site.withApp { port in
            _ = try await RawHTTP.get(port, "/app.css?secret=token")
            _ = try await RawHTTP.get(port, "/nope")
            _ = try await RawHTTP.get(port, "/boom")
            _ = try await RawHTTP.request(port, "HEAD", "/sub/")
            let lines = site.log.messages(.info)
            let pattern = #/^(GET|HEAD) (\S+) (\d{3}) (\d+)\.(\d{2})ms$/#
            let parsed = lines.compactMap { line -> (String, String, String)? in
                guard let m = line.wholeMatch(of: pattern) else { return nil }
                return (String(m.1), String(m.2), String(m.3))
            }
            #expect(parsed.count == lines.count, "every info line is a request line: \(lines)")
            #expect(parsed.map { "\($0.0) \($0.1) \($0.2)" } == ["GET /app.css 200", "GET /nope 404", "GET /boom 500", "HEAD /sub/ 200"], "\(lines)")
            #expect(!lines.joined().contains("token"), "the query must not be logged")
        }
    }

    /// Without recovery, the logger logs a thrown error as a 500 with the error, and rethrows it
    /// (the app's own last-resort handler answers).
    @Test func loggerWithoutRecovery() async throws {
        let log = LogLines()
        let app = App(logger: log.logger)
        app.use(Classic.logger(log.logger))
        app.get("/boom") { _ in throw Kaboom() }
        try await withRunning(app) { port in
            let r = try await RawHTTP.get(port, "/boom")
            #expect(r.status == 500)
            #expect(log.messages(.info).contains { $0.wholeMatch(of: #/GET /boom 500 \d+\.\d\dms error: kaboom/#) != nil }, "\(log.all)")
        }
    }

    @Test func millisecondsFormatting() async throws {
        // Through the logger, the only public way in: a handler that sleeps 30 ms.
        let log = LogLines()
        let app = App(logger: log.logger)
        app.use(Classic.logger(log.logger))
        app.get("/slow") { _ in
            try await Task.sleep(for: .milliseconds(30))
            return .text("slow")
        }
        try await withRunning(app) { port in
            _ = try await RawHTTP.get(port, "/slow")
            let line = try #require(log.messages(.info).first)
            let m = try #require(line.wholeMatch(of: #/GET /slow 200 (\d+)\.(\d\d)ms/#), "\(line)")
            let ms = Double("\(m.1).\(m.2)") ?? 0
            #expect(ms >= 30 && ms < 5000, "\(line)")
        }
    }

    // MARK: App.classic

    /// `App.classic` installs all three, logger outermost.
    @Test func classicApp() async throws {
        let site = try Site()
        let app = App.classic(publicFolder: site.public, logger: site.log.logger)
        app.get("/boom") { _ in throw Kaboom() }
        try await withRunning(app) { port in
            let css = try await RawHTTP.get(port, "/app.css")
            #expect(css.status == 200 && css.body == site.bytes(of: "app.css"))
            let boom = try await RawHTTP.get(port, "/boom")
            #expect(boom.status == 500 && boom.text == "500 internal server error\n")
            #expect(try await RawHTTP.get(port, "/../Package.swift").status == 404)
            let requests = site.log.messages(.info).filter { $0.wholeMatch(of: #/\S+ \S+ \d{3} \d+\.\d\dms/#) != nil }
            #expect(requests.count == 3, "\(site.log.all)")
            #expect(requests.first?.hasPrefix("GET /boom 500") == false)
            #expect(requests.contains { $0.hasPrefix("GET /boom 500 ") }, "the logger sees the recovered 500: \(requests)")
            #expect(site.log.messages(.error).contains { $0.contains("kaboom") })
        }
    }

    @Test func contentTypeTable() {
        #expect(Classic.contentType(for: "a/b.c/readme") == "application/octet-stream")
        #expect(Classic.contentType(for: "x.JS") == "text/javascript; charset=utf-8")
        #expect(Classic.contentType(for: "noext") == "application/octet-stream")
    }
}

// MARK: - Fixture

struct Kaboom: Error, CustomStringConvertible {
    var description: String { "kaboom" }
}

/// A temporary folder: `<tmp>/public` is served; files beside it hold markers that must never
/// appear in an answer.
final class Site: Sendable {
    static let markers = ["SECRET-PACKAGE-MARKER", "SECRET-OUTSIDE-MARKER", "SECRET-HIDDEN-MARKER", "SECRET-DIR-MARKER"]
    let root: String
    let `public`: String
    let log = LogLines()

    init() throws {
        let fm = FileManager.default
        root = fm.temporaryDirectory.appendingPathComponent("classic-\(UUID().uuidString)").path
        `public` = root + "/public"
        let files: [(String, [UInt8])] = [
            ("Package.swift", Array("// SECRET-PACKAGE-MARKER\n".utf8)),
            ("secret.txt", Array("SECRET-OUTSIDE-MARKER\n".utf8)),
            ("outside/secret.txt", Array("SECRET-DIR-MARKER\n".utf8)),
            ("public/index.html", Array("<!doctype html><h1>index</h1>\n".utf8)),
            ("public/UPPER.HTML", Array("<p>upper</p>".utf8)),
            ("public/app.css", Array("body { color: #123; }\n".utf8)),
            ("public/app.js", Array("console.log('hi');\n".utf8)),
            ("public/data.json", Array("{\"a\": 1}\n".utf8)),
            ("public/pic.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0xFF, 0x00, 0x10]),
            ("public/icon.svg", Array("<svg xmlns=\"http://www.w3.org/2000/svg\"/>".utf8)),
            ("public/favicon.ico", [0, 0, 1, 0, 1, 0, 0xFE]),
            ("public/notes.txt", Array("plain notes\n".utf8)),
            ("public/with space.txt", Array("spaced\n".utf8)),
            ("public/blob.bin", (0..<300).map { UInt8($0 % 256) }),
            ("public/sub/index.html", Array("<p>sub index</p>".utf8)),
            ("public/sub/page.html", Array("<p>sub page</p>".utf8)),
            ("public/sub/.hidden", Array("SECRET-HIDDEN-MARKER".utf8)),
            ("public/.secret", Array("SECRET-HIDDEN-MARKER".utf8)),
            ("public/noindex/index.html/x.txt", Array("not an index".utf8)),
        ]
        for (path, bytes) in files {
            let url = URL(fileURLWithPath: root + "/" + path)
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        try fm.createSymbolicLink(atPath: `public` + "/link-out", withDestinationPath: "../secret.txt")
        try fm.createSymbolicLink(atPath: `public` + "/link-out-dir", withDestinationPath: root + "/outside")
        try fm.createSymbolicLink(atPath: `public` + "/link-in", withDestinationPath: "app.css")
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func bytes(of file: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: `public` + "/" + file)))) ?? []
    }

    /// An app with logger, recovery and static (in Martini's order) and a few routes.
    func withApp(prefix: String = "/", maxFileSize: Int = 16 << 20, _ body: (Int) async throws -> Void) async throws {
        let app = App(logger: log.logger)
        app.use(Classic.logger(log.logger))
        app.use(Classic.recovery(logger: log.logger))
        app.use(Classic.static(`public`, prefix: prefix, maxFileSize: maxFileSize))
        app.get("/boom") { _ in throw Kaboom() }
        app.get("/ok") { _ in .text("ok") }
        app.get("/rooms/:name") { r in .text("room \(r.params["name"] ?? "?")") }
        try await withRunning(app, body)
    }
}

/// Runs `body` with `app` started on a free port of 127.0.0.1 (over TLS when given), and always
/// shuts it down.
func withRunning(_ app: App, tls: ServerTLS? = nil, _ body: (Int) async throws -> Void) async throws {
    let running = try await app.start(host: "127.0.0.1", port: 0, tls: tls)
    do {
        try await body(running.port)
    } catch {
        await running.shutdown()
        throw error
    }
    await running.shutdown()
}

/// Log lines kept for the test to read.
final class LogLines: Sendable {
    private let lines = Mutex<[(Logger.Level, String)]>([])

    var logger: Logger {
        Logger(label: "classic-test") { _ in CapturingLogHandler(sink: self) }
    }

    func append(_ level: Logger.Level, _ message: String) { lines.withLock { $0.append((level, message)) } }
    func messages(_ level: Logger.Level) -> [String] { lines.withLock { $0.filter { $0.0 == level }.map(\.1) } }
    var all: [String] { lines.withLock { $0.map { "[\($0.0)] \($0.1)" } } }
}

struct CapturingLogHandler: LogHandler {
    let sink: LogLines
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) { sink.append(event.level, event.message.description) }
}

// MARK: - A raw HTTP/1.1 client

/// One parsed response.
struct RawResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    /// The first value of a header, by lowercase name.
    func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }
}

struct RawHTTPError: Error, CustomStringConvertible { let description: String }

/// Sends request targets exactly as given (no normalisation), over a blocking socket on a
/// thread of its own, and parses the responses. Every wait is bounded (5 s).
enum RawHTTP {
    static func get(_ port: Int, _ target: String) async throws -> RawResponse {
        try await request(port, "GET", target)
    }

    static func request(_ port: Int, _ method: String, _ target: String) async throws -> RawResponse {
        let rs = try await pipeline(port, [(method, target)])
        guard let r = rs.first else { throw RawHTTPError(description: "no response to \(method) \(target)") }
        return r
    }

    /// Sends all requests at once on one connection (the last one says `Connection: close`)
    /// and returns the responses in order.
    static func pipeline(_ port: Int, _ requests: [(String, String)]) async throws -> [RawResponse] {
        var text = ""
        for (i, (method, target)) in requests.enumerated() {
            text += "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
            if i == requests.count - 1 { text += "Connection: close\r\n" }
            text += "\r\n"
        }
        let wire = Array(text.utf8)
        let methods = requests.map(\.0)
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<[RawResponse], any Error>) in
            Thread.detachNewThread {
                c.resume(with: Result { try exchange(port: port, wire, methods: methods) })
            }
        }
    }

    private static func exchange(port: Int, _ wire: [UInt8], methods: [String]) throws -> [RawResponse] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawHTTPError(description: "socket: errno \(errno)") }
        defer { close(fd) }
        // Generous: the suites run in parallel on 2 cores beside a 200-client load test.
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw RawHTTPError(description: "connect: errno \(errno)") }
        var sent = 0
        while sent < wire.count {
            let n = wire[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw RawHTTPError(description: "send: errno \(errno)") }
            sent += n
        }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET { break }
                throw RawHTTPError(description: "recv: errno \(errno) after \(data.count) bytes")
            }
            data += chunk[..<n]
        }
        return try parse(data, methods: methods)
    }

    private static func parse(_ data: [UInt8], methods: [String]) throws -> [RawResponse] {
        var out: [RawResponse] = []
        var pos = 0
        let crlf2: [UInt8] = [13, 10, 13, 10]
        while pos < data.count, out.count < methods.count {
            guard let end = (pos...(data.count - 4)).first(where: { Array(data[$0..<$0 + 4]) == crlf2 }) else {
                throw RawHTTPError(description: "incomplete response head: \(String(decoding: data[pos...], as: UTF8.self))")
            }
            let head = String(decoding: data[pos..<end], as: UTF8.self).components(separatedBy: "\r\n")
            let statusParts = head[0].split(separator: " ")
            guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
                throw RawHTTPError(description: "bad status line \(head[0])")
            }
            var headers: [(String, String)] = []
            for line in head.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            pos = end + 4
            let length = headers.first { $0.0 == "content-length" }.flatMap { Int($0.1) } ?? 0
            let bodyLength = methods[out.count] == "HEAD" ? 0 : length
            guard pos + bodyLength <= data.count else { throw RawHTTPError(description: "truncated body") }
            out.append(RawResponse(status: status, headers: headers, body: Array(data[pos..<pos + bodyLength])))
            pos += bodyLength
        }
        return out
    }
}
