import NIOCore
import NIOHTTP1
@testable import Sockets
import Testing

@Suite struct RouterTests {
    func request(_ method: HTTPMethod, _ uri: String) -> Request {
        Request(head: HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: ["Host": "x"]))
    }

    func body(_ r: Response) -> String { String(buffer: r.body) }

    @Test func patternsMatchParamsAndCatchAll() throws {
        let p = try PathPattern("/rooms/:name/:client")
        #expect(p.match("/rooms/lobby/bob") == ["name": "lobby", "client": "bob"])
        #expect(p.match("/rooms/lobby") == nil)
        #expect(p.match("/rooms/lobby/bob/extra") == nil)
        #expect(p.match("/rooms/caf%C3%A9/x") == ["name": "café", "client": "x"])
        let c = try PathPattern("/static/*")
        #expect(c.match("/static/css/site.css") == ["*": "css/site.css"])
        #expect(c.match("/static") == ["*": ""])
        let named = try PathPattern("/files/*path")
        #expect(named.match("/files/a/b") == ["path": "a/b"])
        #expect(throws: RouteError.self) { try PathPattern("/a/*/b") }
        #expect(throws: RouteError.self) { try PathPattern("/a/:") }
        #expect(try PathPattern("/").match("/") == [:])
    }

    @Test func chainsPassOnUntilOneAnswers() async throws {
        let app = App()
        let seen = RouteLog()
        app.get("/hello/:name",
                { _ in seen.add("first"); return nil },
                { r in .text("hello \(r.params["name"]!)") },
                { _ in seen.add("never"); return .text("unreachable") })
        let r = await app.core.respond(to: request(.GET, "/hello/ann?x=1"))
        #expect(r.status == .ok && body(r) == "hello ann")
        #expect(seen.items == ["first"])
    }

    @Test func notFoundAndMethodNotAllowed() async {
        let app = App()
        app.get("/a") { _ in .text("a") }
        app.post("/a") { _ in .text("posted") }
        #expect(await app.core.respond(to: request(.GET, "/b")).status == .notFound)
        let r = await app.core.respond(to: request(.DELETE, "/a"))
        #expect(r.status == .methodNotAllowed)
        #expect(r.headers["Allow"] == ["GET, POST"])
        #expect(body(await app.core.respond(to: request(.POST, "/a"))) == "posted")
        // HEAD is served by the GET route.
        #expect(await app.core.respond(to: request(.HEAD, "/a")).status == .ok)
        app.any("/any") { r in .text(r.method.rawValue) }
        #expect(body(await app.core.respond(to: request(.PATCH, "/any"))) == "PATCH")
    }

    @Test func middlewareWrapsRoutesInOrder() async {
        let app = App()
        let log = RouteLog()
        app.use { r, next in log.add("m1 in"); let resp = try await next(r); log.add("m1 out"); return resp }
        app.use { r, next in
            if r.headers["X-Block"].first == "1" { return .text("blocked", status: .forbidden) }
            return try await next(r)
        }
        app.get("/x") { _ in log.add("handler"); return .text("x") }
        #expect(body(await app.core.respond(to: request(.GET, "/x"))) == "x")
        #expect(log.items == ["m1 in", "handler", "m1 out"])
        var blocked = request(.GET, "/x")
        blocked = Request(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x", headers: ["X-Block": "1"]))
        #expect(await app.core.respond(to: blocked).status == .forbidden)
    }

    @Test func aThrowingHandlerAnswers500() async {
        struct Boom: Error {}
        let app = App()
        app.get("/boom") { _ in throw Boom() }
        app.get("/ok") { _ in .text("ok") }
        #expect(await app.core.respond(to: request(.GET, "/boom")).status == .internalServerError)
        #expect(await app.core.respond(to: request(.GET, "/ok")).status == .ok)
    }

    @Test func trieMatchesLiteralsBeforeParamsBeforeCatchAllsWhateverTheOrder() async {
        let app = App()
        app.get("/files/*path") { r in .text("catch-all \(r.params["path"]!)") }
        app.get("/rooms/:name") { r in .text("room \(r.params["name"]!)") }
        app.get("/rooms/new") { _ in .text("new room") }
        app.get("/rooms/:name/members") { r in .text("members of \(r.params["name"]!)") }
        app.get("/files/readme") { _ in .text("readme") }
        app.get("/") { _ in .text("root") }
        #expect(body(await app.core.respond(to: request(.GET, "/rooms/new"))) == "new room")
        #expect(body(await app.core.respond(to: request(.GET, "/rooms/lobby"))) == "room lobby")
        #expect(body(await app.core.respond(to: request(.GET, "/rooms/new/members"))) == "members of new") // literal fails deeper: :name tried
        #expect(body(await app.core.respond(to: request(.GET, "/files/readme"))) == "readme")
        #expect(body(await app.core.respond(to: request(.GET, "/files/a/b.txt"))) == "catch-all a/b.txt")
        #expect(body(await app.core.respond(to: request(.GET, "/files"))) == "catch-all ")
        #expect(body(await app.core.respond(to: request(.GET, "/"))) == "root")
        #expect(await app.core.respond(to: request(.GET, "/rooms")).status == .notFound)
        #expect(await app.core.respond(to: request(.GET, "/rooms/a/b/c")).status == .notFound)
        let r = await app.core.respond(to: request(.POST, "/rooms/new"))
        #expect(r.status == .methodNotAllowed && r.headers["Allow"] == ["GET"])
    }

    @Test func methodNotAllowedCollectsEveryRouteThatMatchesThePath() async {
        let app = App()
        app.post("/items/:id") { _ in .text("post") }
        app.put("/items/new") { _ in .text("put") }
        let r = await app.core.respond(to: request(.GET, "/items/new"))
        #expect(r.status == .methodNotAllowed)
        #expect(r.headers["Allow"] == ["PUT, POST"])
        #expect(body(await app.core.respond(to: request(.POST, "/items/new"))) == "post")
    }

    @Test func conflictingParameterNamesAreFoundWhenTheAppStarts() async {
        let app = App()
        app.get("/a/:id") { _ in .text("id") }
        app.get("/a/:name/b") { _ in .text("name") }
        await #expect(throws: RouteError.self) { _ = try await app.start(host: "127.0.0.1", port: 0) }
    }

    @Test func handlersBeforeASocketRouteAnswerOverPlainHTTPToo() async {
        let app = App()
        let log = RouteLog()
        app.use { r, next in log.add("use"); return try await next(r) }
        app.get("/ws", { r in r.headers["X-User"].first == nil ? .text("login required", status: .unauthorized) : nil },
                Sockets.messages()) { _, _ in }
        #expect(await app.core.respond(to: request(.GET, "/ws")).status == .unauthorized)
        #expect(log.items == ["use"])
    }

    @Test func socketRouteReachedOverPlainHTTPAnswersTheHandshakeRefusal() async {
        let app = App()
        app.get("/ws", Sockets.messages()) { _, _ in }
        let plain = await app.core.respond(to: request(.GET, "/ws"))
        #expect(plain.status == .badRequest)
        #expect(body(plain).contains("Upgrade"))
        let post = await app.core.respond(to: request(.POST, "/ws"))
        #expect(post.status == .methodNotAllowed)
    }
}

final class RouteLog: @unchecked Sendable {
    private let lock = RouteLogLock()
    private var _items: [String] = []
    func add(_ s: String) { lock.with { _items.append(s) } }
    var items: [String] { lock.with { _items } }
}

import NIOConcurrencyHelpers
struct RouteLogLock: Sendable {
    let l = NIOLock()
    func with<T>(_ f: () -> T) -> T { l.withLock(f) }
}
