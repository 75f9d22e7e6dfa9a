import NIOConcurrencyHelpers

/// Who may open a connection and what it may speak: the opening handshake's rules for one route.
///
/// The ``allowedOrigin`` pattern is compiled once, when a ``WebSocketRoute`` is created, not per
/// handshake.
public struct HandshakePolicy: Sendable {
    /// A regular expression that must match the request's whole `Origin` header: it is anchored
    /// at both ends (the reference searches it, like Go's `regexp.MatchString`, so the default let
    /// `http://evil.com/http://host` in). `{{host}}` is replaced by the request's `Host`, escaped
    /// so that it matches only itself (the reference inserts it raw, so host `a.b` let origin
    /// `http://aXb` in). Default `"https?://{{host}}$"`: same-host pages only.
    public var allowedOrigin: String
    /// The subprotocols this route speaks, in order of preference. The first one the client also
    /// offers is chosen and echoed in `Sec-WebSocket-Protocol`. Default: none.
    public var subprotocols: [String]
    /// Accept handshakes that carry no `Origin` header (non-browser clients). Default `false`:
    /// a missing Origin is refused with 403, because the origin check cannot be made.
    public var allowMissingOrigin: Bool
    /// Accept any origin (no check at all). Default `false`. For tools and servers whose clients
    /// are not browsers; never for a route that relies on cookies.
    public var allowAnyOrigin: Bool

    /// Creates a policy; every parameter has the default given on its property.
    public init(allowedOrigin: String = "https?://{{host}}$", subprotocols: [String] = [],
                allowMissingOrigin: Bool = false, allowAnyOrigin: Bool = false) {
        self.allowedOrigin = allowedOrigin
        self.subprotocols = subprotocols
        self.allowMissingOrigin = allowMissingOrigin
        self.allowAnyOrigin = allowAnyOrigin
    }

    /// Checks the subprotocol names and compiles the origin pattern once.
    ///
    /// - Throws: ``OptionsError`` naming `subprotocols` or `allowedOrigin`.
    public func validate() throws(OptionsError) {
        _ = try compileOrigin()
    }

    /// The compiled origin check (nil when any origin is allowed).
    func compileOrigin() throws(OptionsError) -> OriginMatcher? {
        for p in subprotocols where !HTTPToken.isToken(p) {
            throw OptionsError(field: "subprotocols", reason: "\"\(p)\" is not an HTTP token")
        }
        guard !allowAnyOrigin else { return nil }
        do {
            return try OriginMatcher(pattern: allowedOrigin)
        } catch {
            throw OptionsError(field: "allowedOrigin", reason: "not a valid regular expression: \(error)")
        }
    }
}

/// The origin check of a route (RFC 6455 §10.2), compiled once.
///
/// The host is inserted escaped, so it matches only itself, and matching ignores case, since
/// scheme and host names do. The pattern must match the whole origin (anchored at both ends). A
/// pattern with one `{{host}}` outside any group, class or
/// alternation (the default `https?://{{host}}$` among them) is compiled once as the regex before
/// the host and the regex after it: a match is an occurrence of the host with the first ending
/// right before it and the second ending the origin, which is what matching the whole pattern
/// against the whole origin finds. Any other pattern with `{{host}}` is compiled per distinct host and the result
/// kept (a bounded cache); a pattern without it is compiled once.
///
/// `@unchecked Sendable`: `Regex` is an immutable value that the standard library does not mark
/// `Sendable`; each one here is matched once at set-up (so its lazily lowered program exists
/// before it is shared) and never mutated after, and the cache is behind a lock.
final class OriginMatcher: @unchecked Sendable {
    private enum Form {
        case fixed(Regex<AnyRegexOutput>)
        case split(before: Regex<AnyRegexOutput>, after: Regex<AnyRegexOutput>)
        case perHost
    }

    let pattern: String
    private let form: Form
    private let cache = NIOLockedValueBox<[String: Regex<AnyRegexOutput>]>([:])
    private static let cacheLimit = 64

    init(pattern: String) throws {
        self.pattern = pattern
        let pieces = pattern.split(separator: "{{host}}", omittingEmptySubsequences: false).map(String.init)
        if pieces.count == 1 {
            let regex = try Regex(pattern).ignoresCase()
            _ = try? regex.wholeMatch(in: "warm-up")
            form = .fixed(regex)
            return
        }
        // Always check the whole pattern compiles, with a sample host.
        _ = try Self.compile(pattern, host: "example.com:8080")
        if pieces.count == 2, Self.splittable(before: pieces[0], after: pieces[1]),
           let before = try? Regex("(?:" + pieces[0] + ")").ignoresCase(),
           let after = try? Regex("(?:" + pieces[1] + ")").ignoresCase() {
            form = .split(before: before, after: after)
            _ = try? before.wholeMatch(in: "warm-up")
            _ = try? after.wholeMatch(in: "warm-up")
        } else {
            form = .perHost
        }
    }

    /// Whether `origin` passes for a request to `host`.
    func allows(origin: String, host: String) -> Bool {
        switch form {
        case .fixed(let regex):
            return (try? regex.wholeMatch(in: origin)) != nil
        case .split(let before, let after):
            let o = Array(origin.utf8), h = Array(host.utf8).map(Self.lower)
            guard !h.isEmpty, h.count <= o.count else { return false }
            for start in 0...(o.count - h.count) where (0..<h.count).allSatisfy({ Self.lower(o[start + $0]) == h[$0] }) {
                let head = String(decoding: o[..<start], as: UTF8.self)
                let tail = String(decoding: o[(start + h.count)...], as: UTF8.self)
                if (try? before.wholeMatch(in: head)) != nil, (try? after.wholeMatch(in: tail)) != nil { return true }
            }
            return false
        case .perHost:
            let key = host.lowercased()
            let regex: Regex<AnyRegexOutput>? = cache.withLockedValue { $0[key] } ?? {
                guard let r = try? Self.compile(pattern, host: key) else { return nil }
                cache.withLockedValue { c in
                    if c.count >= Self.cacheLimit { c.removeAll() }
                    c[key] = r
                }
                return r
            }()
            guard let regex else { return false }
            return (try? regex.wholeMatch(in: origin)) != nil
        }
    }

    private static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    static func compile(_ pattern: String, host: String) throws -> Regex<AnyRegexOutput> {
        try Regex(pattern.replacing("{{host}}", with: escape(host))).ignoresCase()
    }

    /// Whether matching the two halves apart finds exactly what searching the whole pattern finds:
    /// the host stands outside any group or class, there is no alternation, lookaround or
    /// backreference, no anchor that would mean something else in a half, and no quantifier
    /// applies to the host.
    private static func splittable(before: String, after: String) -> Bool {
        func scan(_ s: String) -> (depth: Int, inClass: Bool, bad: Bool, anchors: Set<Character>) {
            var depth = 0, inClass = false, bad = false, escaped = false
            var anchors = Set<Character>()
            var previous: Character = " "
            for ch in s {
                defer { previous = ch }
                if escaped {
                    escaped = false
                    if ch.isNumber || ch == "k" || ch == "g" || ch == "b" || ch == "B" || ch == "A" || ch == "z" || ch == "Z" { bad = true }
                    continue
                }
                switch ch {
                case "\\": escaped = true
                case "[" where !inClass: inClass = true
                case "]" where inClass: inClass = false
                case "(" where !inClass: depth += 1
                case ")" where !inClass: depth -= 1
                case "?" where !inClass && previous == "(": bad = true
                case "|" where !inClass: bad = true
                case "^" where !inClass, "$" where !inClass: anchors.insert(ch)
                default: break
                }
            }
            return (depth, inClass, bad || escaped, anchors)
        }
        let b = scan(before), a = scan(after)
        guard b.depth == 0, !b.inClass, !b.bad, !a.bad, !b.anchors.contains("$"), !a.anchors.contains("^") else { return false }
        if let first = after.first, "*+?{".contains(first) { return false }
        return true
    }

    /// Escapes every ASCII character that is not a letter or digit; Hosts with anything outside
    /// printable ASCII never get here (they are refused as a bad request first).
    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            if ch.isASCII, ch.properties.isAlphabetic || ("0"..."9").contains(ch) {
                out.unicodeScalars.append(ch)
            } else {
                out += "\\"
                out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}
