internal import CWebSocket

/// RFC 9110 §5.6.2 tokens, checked by the C engine's one token table (the one its
/// permessage-deflate parser uses).
package enum HTTPToken {
    /// Whether `s` is a non-empty token.
    package static func isToken(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { cws_http_is_token($0.baseAddress, $0.count) }
    }
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
