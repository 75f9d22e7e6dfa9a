/// RFC 9110 §5.6.2 token characters.
package enum HTTPToken {
    /// Whether `b` may appear in a token.
    package static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    /// Whether `s` is a non-empty token.
    package static func isToken(_ s: String) -> Bool { !s.isEmpty && s.utf8.allSatisfy(isTokenByte) }
}

/// The one place a request target is split into path and query.
package enum RequestTarget {
    /// The path of an origin-form target (`/a/b?x=1` → `/a/b`).
    package static func path(of uri: String) -> Substring {
        uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }
}

extension String {
    /// Trims spaces and tabs (RFC 9110 OWS) from both ends.
    package func trimmingHTTPWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
