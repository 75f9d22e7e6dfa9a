public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Martini's classic preset: request logging, recovery from thrown errors, and static files.
///
/// ```swift
/// let app = App.classic(publicFolder: "public")      // all three, in Martini's order
/// // or pick them one by one:
/// let app = App()
/// app.use(Classic.logger(Logger(label: "web")))
/// app.use(Classic.recovery())
/// app.use(Classic.static("public", prefix: "/assets"))
/// ```
///
/// Each factory returns a ``Middleware`` for ``App/use(_:)``. Middleware runs around HTTP routes
/// only: a WebSocket handshake that succeeds never reaches it (a refused one does, and is logged
/// like any other request).
public enum Classic {
    // MARK: Logger

    /// Logs one line per request, at `info` level, when its answer is known:
    /// `GET /rooms/lobby 200 0.42ms` — method, path (without the query, which may carry
    /// secrets), status code, and the time the rest of the chain took in milliseconds.
    ///
    /// A request whose handler throws is logged with status 500 and the error appended
    /// (`GET /boom 500 0.10ms error: …`), and the error is rethrown; put ``recovery(logger:)``
    /// after the logger so that it turns the error into a response.
    ///
    /// - Parameter logger: where the lines go.
    /// - Returns: the middleware.
    public static func logger(_ logger: Logger) -> Middleware {
        { request, next in
            let clock = ContinuousClock()
            let start = clock.now
            do {
                let response = try await next(request)
                logger.info("\(requestLine(request, status: response.status.code, elapsed: clock.now - start))")
                return response
            } catch {
                logger.info("\(requestLine(request, status: 500, elapsed: clock.now - start)) error: \(error)")
                throw error
            }
        }
    }

    /// `METHOD PATH STATUS 1.23ms`.
    static func requestLine(_ request: Request, status: UInt, elapsed: Duration) -> String {
        "\(request.method.rawValue) \(request.path) \(status) \(milliseconds(elapsed))ms"
    }

    /// A duration as milliseconds with two decimals ("0.42"), without Foundation's formatters.
    static func milliseconds(_ d: Duration) -> String {
        let (seconds, attoseconds) = d.components
        // 1 ms = 10^15 attoseconds; hundredths of a millisecond = 10^13 attoseconds.
        let hundredths = seconds * 100_000 + (attoseconds + 5_000_000_000_000) / 10_000_000_000_000
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    // MARK: Recovery

    /// Turns an error thrown by the rest of the chain into a `500 Internal Server Error` with the
    /// one-line body `500 internal server error`, and logs the error (at `error` level, with the
    /// method and path). The connection and the server keep serving.
    ///
    /// The error's text goes to the log only, never to the client: it may describe internals.
    /// Unlike Go's `recover`, this cannot catch a crash (`fatalError`, a failed precondition):
    /// Swift stops the process for those.
    ///
    /// - Parameter logger: where recovered errors are logged. Default label `"sockets.recovery"`.
    /// - Returns: the middleware.
    public static func recovery(logger: Logger = Logger(label: "sockets.recovery")) -> Middleware {
        { request, next in
            do {
                return try await next(request)
            } catch {
                logger.error("recovered from error in \(request.method.rawValue) \(request.path): \(error)")
                return .text("500 internal server error\n", status: .internalServerError)
            }
        }
    }

    // MARK: Static files

    /// Serves the files under `folder` for GET and HEAD requests whose path starts with `prefix`;
    /// everything else, and every path that names no servable file, passes on to the next handler
    /// (so routes and the app's 404 still work).
    ///
    /// Path resolution is strict, because the path comes from the network:
    /// - the path is split on `/` first and each segment is then percent-decoded, so an encoded
    ///   slash (`%2F`) or backslash can never create a new segment; a segment that decodes to
    ///   `.`, `..`, or anything containing `/`, `\` or NUL is refused (passes on, so: 404);
    /// - segments starting with `.` (hidden files such as `.git`, `.env`) are never served;
    /// - the file's real path (symlinks resolved) must lie inside the folder's real path, so a
    ///   symlink cannot lead outside it; only regular files are served (no devices or FIFOs);
    /// - a directory is answered with its `index` file; a directory path without a trailing
    ///   slash is redirected (301) to the same path with one, so relative links in the index work.
    ///
    /// Files are read on NIO's blocking-I/O thread pool, never on an event loop or the Swift
    /// concurrency pool. A file larger than `maxFileSize` throws ``StaticFileError`` (a 500 after
    /// ``recovery(logger:)``) rather than being loaded into memory. Content types cover html, css,
    /// js, json, png, svg, ico, txt and a few more; anything else is `application/octet-stream`.
    /// Responses carry `X-Content-Type-Options: nosniff` and `Cache-Control: no-cache`.
    ///
    /// - Parameters:
    ///   - folder: the folder to serve; a relative path is taken from the working directory at
    ///     the time this is called.
    ///   - prefix: the URL path the folder appears under, e.g. `"/assets"`. Default `"/"`.
    ///   - index: the file answering for a directory; `""` serves no index. Default `"index.html"`.
    ///   - maxFileSize: the largest file served, in bytes. Default 16 MiB.
    /// - Returns: the middleware.
    public static func `static`(
        _ folder: String, prefix: String = "/", index: String = "index.html", maxFileSize: Int = 16 << 20
    ) -> Middleware {
        let files = StaticFiles(folder: folder, prefix: prefix, index: index, maxFileSize: maxFileSize)
        return { request, next in
            guard request.method == .GET || request.method == .HEAD,
                  let path = files.resolve(request.path) else {
                return try await next(request)
            }
            let found = try await NIOThreadPool.singleton.runIfActive { try files.load(path) }
            switch found {
            case .notFound:
                return try await next(request)
            case .forbidden:
                return .text("403 forbidden\n", status: .forbidden)
            case .redirect(let location):
                var r = Response.text("301 moved permanently\n", status: .movedPermanently)
                let query = request.head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first
                r.headers.add(name: "Location", value: location + (query.map { "?" + $0 } ?? ""))
                return r
            case .file(let body, let contentType):
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: contentType)
                headers.add(name: "X-Content-Type-Options", value: "nosniff")
                headers.add(name: "Cache-Control", value: "no-cache")
                return Response(status: .ok, headers: headers, body: body)
            }
        }
    }

    /// The content type for a file name, by its extension (case-insensitive).
    ///
    /// - Parameter fileName: a file name or path.
    /// - Returns: the `Content-Type` value; `application/octet-stream` for unknown extensions.
    public static func contentType(for fileName: String) -> String {
        guard let dot = fileName.lastIndex(of: "."), !fileName[dot...].contains("/") else {
            return "application/octet-stream"
        }
        switch fileName[fileName.index(after: dot)...].lowercased() {
        case "html", "htm": return "text/html; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "json", "map": return "application/json"
        case "txt": return "text/plain; charset=utf-8"
        case "png": return "image/png"
        case "svg": return "image/svg+xml"
        case "ico": return "image/x-icon"
        case "jpg", "jpeg": return "image/jpeg"
        case "gif": return "image/gif"
        case "webp": return "image/webp"
        case "woff2": return "font/woff2"
        case "wasm": return "application/wasm"
        default: return "application/octet-stream"
        }
    }
}

/// A file that ``Classic/static(_:prefix:index:maxFileSize:)`` found but could not serve.
public struct StaticFileError: Error, Sendable, CustomStringConvertible {
    /// The file's path on disk.
    public let path: String
    /// Why it was not served.
    public let reason: String
    /// `"cannot serve <path>: <reason>"`.
    public var description: String { "cannot serve \(path): \(reason)" }
}

extension App {
    /// An app with Martini's classic middleware installed, in Martini's order:
    /// ``Classic/logger(_:)`` (outermost, so it also logs the 500s), ``Classic/recovery(logger:)``,
    /// then ``Classic/static(_:prefix:index:maxFileSize:)`` for `publicFolder` at `/`.
    ///
    /// ```swift
    /// let app = App.classic(publicFolder: "public")
    /// app.get("/hello") { _ in .text("hello") }
    /// try await app.run()
    /// ```
    ///
    /// - Parameters:
    ///   - publicFolder: the folder of static files served at `/`. Default `"public"`, as in Martini.
    ///   - logger: the logger for request lines, recovered errors and the app itself.
    ///   - maxBodySize: the largest request body accepted; see ``App/init(logger:maxBodySize:shutdownTimeout:http:)``.
    /// - Returns: the app, ready for routes.
    public static func classic(
        publicFolder: String = "public", logger: Logger = Logger(label: "sockets.app"), maxBodySize: Int = 1 << 20
    ) -> App {
        let app = App(logger: logger, maxBodySize: maxBodySize)
        app.use(Classic.logger(logger))
        app.use(Classic.recovery(logger: logger))
        app.use(Classic.static(publicFolder))
        return app
    }
}

// MARK: - Implementation

/// The resolution and reading behind ``Classic/static(_:prefix:index:maxFileSize:)``.
struct StaticFiles: Sendable {
    /// A request path reduced to safe, decoded segments below the folder.
    struct Path: Sendable, Equatable {
        var segments: [String]
        var trailingSlash: Bool
    }

    enum Found: Sendable {
        case file(ByteBuffer, contentType: String)
        case redirect(String)
        case notFound
        case forbidden
    }

    let folder: String
    /// The prefix's segments; empty for `/`.
    let prefix: [Substring]
    let index: String?
    let maxFileSize: Int

    init(folder: String, prefix: String, index: String, maxFileSize: Int) {
        self.folder = folder.hasPrefix("/") ? folder : Self.currentDirectory() + "/" + folder
        self.prefix = prefix.split(separator: "/", omittingEmptySubsequences: true)
        // An index name must itself be one safe segment, or it is ignored.
        self.index = Self.isSafeSegment(index) ? index : nil
        self.maxFileSize = max(0, maxFileSize)
    }

    /// The file path a request path asks for, or nil when it is not under the prefix or is not a
    /// safe path. Splitting happens before decoding: `%2F` stays inside its segment and is then
    /// refused, so no escape sequence can add or remove a path level.
    func resolve(_ requestPath: String) -> Path? {
        // Origin-form only (RFC 9112 §3.2.1); an absolute-form or asterisk target passes on.
        guard requestPath.hasPrefix("/") else { return nil }
        let raw = requestPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        // Empty segments ("//", a trailing "/") carry no name; the prefix is compared on the rest.
        let named = raw.filter { !$0.isEmpty }
        guard named.count >= prefix.count, zip(named, prefix).allSatisfy({ $0 == $1 }) else { return nil }
        var segments: [String] = []
        for segment in named.dropFirst(prefix.count) {
            guard let decoded = String(segment).removingPercentEncoding, Self.isSafeSegment(decoded) else { return nil }
            segments.append(decoded)
        }
        return Path(segments: segments, trailingSlash: requestPath.hasSuffix("/"))
    }

    /// One path component we are willing to open: not empty, not hidden (which also excludes `.`
    /// and `..`), no separators of any platform, no NUL.
    static func isSafeSegment(_ s: String) -> Bool {
        !s.isEmpty && !s.hasPrefix(".") && !s.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") || $0 == 0 })
    }

    /// Finds and reads the file. Blocking: runs on the thread pool.
    func load(_ path: Path, isIndex: Bool = false) throws -> Found {
        guard let root = Self.realPath(folder) else { return .notFound }
        let candidate = ([root] + path.segments).joined(separator: "/")
        guard let real = Self.realPath(candidate) else {
            return errno == EACCES ? .forbidden : .notFound
        }
        // The real path must stay inside the real root: symlinks pointing out are not followed.
        let rootSlash = root.hasSuffix("/") ? root : root + "/"
        guard real == root || real.hasPrefix(rootSlash) else { return .notFound }

        // O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: the path was just
        // resolved, so a symlink here means it was swapped in since.
        let fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return errno == EACCES ? .forbidden : .notFound }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .notFound }

        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            guard let index, !isIndex else { return .notFound }
            if !path.trailingSlash {
                // Built from the decoded, checked segments (re-encoded), never from the request
                // text, so the Location cannot become `//host` (an open redirect).
                let location = "/" + (prefix.map(String.init) + path.segments).map(Self.encodeSegment).joined(separator: "/") + "/"
                return .redirect(location == "//" ? "/" : location)
            }
            return try load(Path(segments: path.segments + [index], trailingSlash: false), isIndex: true)
        case S_IFREG:
            // A file name with a trailing slash is not a directory.
            guard !path.trailingSlash else { return .notFound }
            guard Int(st.st_size) <= maxFileSize else {
                throw StaticFileError(path: real, reason: "\(st.st_size) bytes, over the \(maxFileSize)-byte limit")
            }
            let body = try Self.readAll(fd, size: Int(st.st_size), limit: maxFileSize, path: real)
            // Typed by the name the client asked for (as a browser would read it), not by where a
            // symlink inside the folder happens to point.
            return .file(body, contentType: Classic.contentType(for: path.segments.last ?? real))
        default:
            return .notFound
        }
    }

    /// Reads a regular file of about `size` bytes; it may have changed since `fstat`, so reading
    /// goes on to EOF but never past `limit`.
    static func readAll(_ fd: Int32, size: Int, limit: Int, path: String) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        // One byte past the limit is read to see that the file grew over it; with `limit` at
        // `Int.max` there is no such byte (and `limit + 1` would trap).
        let cap = limit < Int.max ? limit + 1 : Int.max
        while true {
            let room = min(max(buffer.writableBytes, 64 * 1024), cap - buffer.readableBytes)
            var failure: Int32 = 0
            let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { raw -> Int in
                let n = read(fd, raw.baseAddress, min(raw.count, room))
                if n < 0 { failure = errno }
                return max(n, 0)
            }
            if failure == EINTR { continue }
            if failure != 0 { throw StaticFileError(path: path, reason: "read failed, errno \(failure)") }
            if n == 0 { return buffer }
            if buffer.readableBytes > limit {
                throw StaticFileError(path: path, reason: "grew over the \(limit)-byte limit while being read")
            }
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func currentDirectory() -> String {
        guard let p = getcwd(nil, 0) else { return "." }
        defer { free(p) }
        return String(cString: p)
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters.
    static func encodeSegment(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
