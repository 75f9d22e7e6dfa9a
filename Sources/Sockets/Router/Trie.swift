import NIOCore
import NIOHTTP1

/// A socket route, with its message type erased: its compiled NIO route (options checked, origin
/// pattern compiled once) and how to start a connection.
struct SocketEndpoint: Sendable {
    let options: Options
    let route: WebSocketRoute
    /// Starts a connection: the work to run in a task (a channel-API handler), or nil when the
    /// connection needs none (the callback API).
    let start: @Sendable (_ channel: any Channel, _ request: SocketRequest) throws -> (@Sendable () async -> Void)?
}

/// One route as added: its method (nil: any), pattern and what answers it.
struct Route: Sendable {
    enum Target: Sendable {
        /// An HTTP route's handler chain.
        case http([Handler])
        /// A socket route: handlers that may answer before the upgrade (authentication), then
        /// the socket middleware.
        case socket([Handler], SocketEndpoint)
    }
    let method: HTTPMethod?
    let pattern: PathPattern
    let target: Target
}

/// What a path and method match.
enum RouteMatch {
    case found(Route, [String: String])
    case methodNotAllowed([HTTPMethod])
    case notFound
}

/// The routes compiled into a trie once, when the app starts; immutable and shared by every
/// connection without a lock or a copy.
///
/// Precedence at each segment: a literal segment before a `:param` before a catch-all, so
/// `/rooms/new` wins over `/rooms/:name` whatever order they were added in; when the more
/// specific branch does not match the rest of the path, the next one is tried. Among the routes
/// of one node, the first added whose method fits wins (HEAD is answered by a GET route,
/// RFC 9110 §9.3.2); a path that only routes of other methods match answers 405 with them.
final class RouterTrie: Sendable {
    private final class Node: Sendable {
        let literals: [Substring: Node]
        let param: (name: String, node: Node)?
        let catchAll: (name: String, routes: [Route])?
        let routes: [Route]

        init(literals: [Substring: Node], param: (name: String, node: Node)?, catchAll: (name: String, routes: [Route])?, routes: [Route]) {
            self.literals = literals
            self.param = param
            self.catchAll = catchAll
            self.routes = routes
        }
    }

    /// A node under construction.
    private final class Builder {
        var literals: [Substring: Builder] = [:]
        var param: (name: String, node: Builder)?
        var catchAll: (name: String, routes: [Route])?
        var routes: [Route] = []

        func freeze() -> Node {
            Node(literals: literals.mapValues { $0.freeze() }, param: param.map { ($0.name, $0.node.freeze()) },
                 catchAll: catchAll, routes: routes)
        }
    }

    private let root: Node

    /// Compiles `routes` (in the order they were added).
    ///
    /// - Throws: ``RouteError`` when two routes name the same parameter position differently
    ///   (`/a/:id` and `/a/:name`), which a trie cannot tell apart.
    init(_ routes: [Route]) throws(RouteError) {
        let root = Builder()
        for route in routes {
            var node = root
            for segment in route.pattern.segments {
                switch segment {
                case .literal(let l):
                    let key = Substring(l)
                    if let next = node.literals[key] { node = next } else {
                        let next = Builder()
                        node.literals[key] = next
                        node = next
                    }
                case .param(let name):
                    if let p = node.param {
                        guard p.name == name else {
                            throw RouteError(pattern: route.pattern.description, reason: "parameter :\(name) where another route has :\(p.name)")
                        }
                        node = p.node
                    } else {
                        let next = Builder()
                        node.param = (name, next)
                        node = next
                    }
                case .catchAll(let name):
                    if let c = node.catchAll {
                        guard c.name == name else {
                            throw RouteError(pattern: route.pattern.description, reason: "catch-all *\(name) where another route has *\(c.name)")
                        }
                        node.catchAll = (name, c.routes + [route])
                    } else {
                        node.catchAll = (name, [route])
                    }
                }
            }
            if case .catchAll = route.pattern.segments.last {} else { node.routes.append(route) }
        }
        self.root = root.freeze()
    }

    /// Matches a request's method and path (without the query).
    func match(method: HTTPMethod, path: Substring) -> RouteMatch {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        var allowed: [HTTPMethod] = []
        var params: [String: String] = [:]
        var found: (Route, [String: String])?
        walk(root, parts[...], &params) { routes, params in
            if let route = routes.first(where: { r in r.method == nil || r.method == method || (method == .HEAD && r.method == .GET) }) {
                found = (route, params)
                return true
            }
            for r in routes { if let m = r.method, !allowed.contains(m) { allowed.append(m) } }
            return false
        }
        if let (route, params) = found { return .found(route, params) }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed)
    }

    /// Visits the route lists that match the rest of the path, most specific first, until
    /// `visit` returns true. Returns whether it did.
    @discardableResult
    private func walk(_ node: Node, _ rest: ArraySlice<Substring>, _ params: inout [String: String],
                      _ visit: ([Route], [String: String]) -> Bool) -> Bool {
        guard let segment = rest.first else {
            if !node.routes.isEmpty, visit(node.routes, params) { return true }
            if let c = node.catchAll {
                var p = params
                p[c.name] = ""
                if visit(c.routes, p) { return true }
            }
            return false
        }
        let after = rest.dropFirst()
        if let next = node.literals[segment], walk(next, after, &params, visit) { return true }
        if let (name, next) = node.param {
            // A malformed escape leaves the parameter absent, as before the trie.
            let value = String(segment).removingPercentEncoding
            let saved = params[name]
            params[name] = value
            if walk(next, after, &params, visit) { return true }
            params[name] = saved
        }
        if let c = node.catchAll {
            var p = params
            p[c.name] = rest.joined(separator: "/")
            if visit(c.routes, p) { return true }
        }
        return false
    }
}
