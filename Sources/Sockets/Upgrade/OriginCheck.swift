/// The origin check of a socket route (RFC 6455 §10.2): `Options.allowedOrigin` is a regular
/// expression searched in the `Origin` header, with `{{host}}` standing for the request's `Host`.
///
/// The host is inserted escaped, character by character, so it matches only itself: with the
/// reference's raw insertion, host `a.b` made `.` a wildcard and let `http://aXb` in. Matching
/// ignores case, since scheme and host names do.
struct OriginCheck: Sendable {
    let pattern: String

    /// Compiles the pattern once with a sample host, so a bad pattern is found at setup.
    init(pattern: String) throws {
        self.pattern = pattern
        _ = try Self.compile(pattern, host: "example.com:8080")
    }

    static func compile(_ pattern: String, host: String) throws -> Regex<AnyRegexOutput> {
        let source = pattern.replacing("{{host}}", with: escape(host))
        return try Regex(source).ignoresCase()
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

    /// Whether `origin` passes for a request to `host`.
    func allows(origin: String, host: String) -> Bool {
        Self.allows(pattern: pattern, origin: origin, host: host)
    }

    /// Whether `origin` passes `pattern` for a request to `host` (one compilation).
    static func allows(pattern: String, origin: String, host: String) -> Bool {
        guard let regex = try? compile(pattern, host: host) else { return false }
        return (try? regex.firstMatch(in: origin)) != nil
    }
}

