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
    /// The path of a request target without its query: origin-form (`/a/b?x=1` → `/a/b`) or
    /// absolute-form (RFC 9112 §3.2.2: `http://host:8080/a/b?x=1` → `/a/b`, and `http://host` →
    /// `/`). Scheme names are case-insensitive (RFC 3986 §3.1).
    package static func path(of uri: String) -> Substring {
        var target = Substring(uri)
        if let first = target.utf8.first, first != UInt8(ascii: "/"), let schemeEnd = target.firstRange(of: "://"),
           target[..<schemeEnd.lowerBound].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) {
            let authorityAndPath = target[schemeEnd.upperBound...]
            let pathStart = authorityAndPath.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? authorityAndPath.endIndex
            target = authorityAndPath[pathStart...]
            if target.first != "/" { return "/" }
        }
        return target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
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
