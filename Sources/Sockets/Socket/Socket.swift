public import NIOCore
public import NIOHTTP1
import NIOConcurrencyHelpers

/// What the handler of a socket route can know about the request that opened the connection.
///
/// A socket keeps it for the whole connection, so it is kept packed: the URI, the headers and the
/// path parameters in one buffer (one allocation, where the parsed head held an array and a
/// string per long name or value: about 0.85 KiB per idle connection). ``head``, ``headers``
/// and ``params`` are rebuilt from it on each use: read them once and keep the value where they
/// are needed often.
public struct SocketRequest: Sendable {
    private let method: HTTPMethod
    private let version: HTTPVersion
    /// The URI, the headers and the parameters: see `Packed`.
    private let packed: [UInt8]
    /// The peer's address, when known.
    public let remoteAddress: SocketAddress?
    /// The subprotocol agreed in the handshake, if any.
    public let subprotocol: String?

    init(head: HTTPRequestHead, params: [String: String], remoteAddress: SocketAddress?, subprotocol: String?) {
        self.method = head.method
        self.version = head.version
        self.packed = Packed.pack(uri: head.uri, headers: head.headers, params: params)
        self.remoteAddress = remoteAddress
        self.subprotocol = subprotocol
    }

    /// The request head (method, URI, headers), rebuilt on each use.
    public var head: HTTPRequestHead {
        let (uri, headers) = Packed.read(packed) { r in (r.string(), r.headers()) }
        return HTTPRequestHead(version: version, method: method, uri: uri, headers: headers)
    }

    /// Path parameters from the route pattern (`:name`, and `*` for a catch-all), rebuilt on each
    /// use.
    public var params: [String: String] {
        Packed.read(packed) { r in
            r.skipString()
            r.skipPairs()
            var result: [String: String] = [:]
            r.pairs { name, value in result[name] = value }
            return result
        }
    }

    /// The request's headers, rebuilt on each use.
    public var headers: HTTPHeaders {
        Packed.read(packed) { r in
            r.skipString()
            return r.headers()
        }
    }

    /// The request URI (path and query).
    public var uri: String { Packed.read(packed) { r in r.string() } }

    /// The request path, without the query.
    public var path: String { String(RequestTarget.path(of: uri)) }

    /// The query parameters of the request URI (`/chat?room=go&user=ann` gives
    /// `["room": "go", "user": "ann"]`), percent-decoded, `+` read as a space. When a name comes
    /// more than once, the first value wins (all of them: ``queryValues(_:)``); a name without `=`
    /// has the value `""`.
    public var query: [String: String] {
        var result: [String: String] = [:]
        for (name, value) in QueryString.pairs(of: uri) where result[name] == nil { result[name] = value }
        return result
    }

    /// Every value of one query parameter, in order (`?tag=a&tag=b` gives `["a", "b"]` for
    /// `"tag"`); empty when the parameter is absent.
    ///
    /// - Parameter name: the parameter's name, as decoded.
    public func queryValues(_ name: String) -> [String] {
        QueryString.pairs(of: uri).filter { $0.0 == name }.map(\.1)
    }
}

/// A request's URI, headers and path parameters in one byte buffer: the URI, the number of
/// headers, each name and value, the number of parameters, each name and value; every string is
/// its UTF-8 length (4 bytes, little-endian) and its bytes.
enum Packed {
    static func pack(uri: String, headers: HTTPHeaders, params: [String: String]) -> [UInt8] {
        var size = 4 + uri.utf8.count + 8
        for (name, value) in headers { size += 8 + name.utf8.count + value.utf8.count }
        for (name, value) in params { size += 8 + name.utf8.count + value.utf8.count }
        var out: [UInt8] = []
        out.reserveCapacity(size)
        func put(_ n: Int) { withUnsafeBytes(of: UInt32(n).littleEndian) { out.append(contentsOf: $0) } }
        func put(_ s: String) {
            put(s.utf8.count)
            out.append(contentsOf: s.utf8)
        }
        put(uri)
        put(headers.count)
        for (name, value) in headers {
            put(name)
            put(value)
        }
        put(params.count)
        for (name, value) in params {
            put(name)
            put(value)
        }
        return out
    }

    /// Reads `packed` with `body`, which takes (or skips) the parts in order: the URI, the
    /// headers, the parameters. Only what is taken is decoded.
    static func read<R>(_ packed: [UInt8], _ body: (inout Reader) -> R) -> R {
        packed.withUnsafeBytes { raw in
            var reader = Reader(raw: raw)
            return body(&reader)
        }
    }

    struct Reader {
        let raw: UnsafeRawBufferPointer
        var at = 0

        mutating func int() -> Int {
            let n = raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)
            at += 4
            return Int(UInt32(littleEndian: n))
        }

        mutating func string() -> String {
            let n = int()
            defer { at += n }
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[at..<at + n]), as: UTF8.self)
        }

        mutating func skipString() { at += int() }

        /// Each name and value of the next part, in order.
        mutating func pairs(_ each: (String, String) -> Void) {
            for _ in 0..<int() { each(string(), string()) }
        }

        mutating func skipPairs() {
            for _ in 0..<int() {
                skipString()
                skipString()
            }
        }

        /// The next part (the headers) as HTTP headers.
        mutating func headers() -> HTTPHeaders {
            var result = HTTPHeaders()
            pairs { name, value in result.add(name: name, value: value) }
            return result
        }
    }
}

/// The query string of a request target, split and percent-decoded.
enum QueryString {
    static func pairs(of uri: String) -> [(String, String)] {
        guard let q = uri.firstIndex(of: "?") else { return [] }
        var query = uri[uri.index(after: q)...]
        if let hash = query.firstIndex(of: "#") { query = query[..<hash] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { part in
            if let eq = part.firstIndex(of: "=") {
                return (decode(part[..<eq]), decode(part[part.index(after: eq)...]))
            }
            return (decode(part), "")
        }
    }

    /// Percent-decoding with `+` as a space (HTML forms); a malformed escape is kept as it is, and
    /// bytes that are not UTF-8 are repaired.
    static func decode(_ s: Substring) -> String {
        let b = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count, let h = hex(b[i + 1]), let l = hex(b[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(b[i] == UInt8(ascii: "+") ? UInt8(ascii: " ") : b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// One event of a connection, for a single loop over ``Socket/events``: the Swift counterpart of
/// the reference's `select` over receiver, errors and done.
public enum SocketEvent<Message: Sendable>: Sendable {
    /// A message from the peer, decoded.
    case message(Message)
    /// Something went wrong: a message that did not decode, a protocol violation by the peer, a
    /// timeout. Errors that end the connection are followed by ``done(_:)``.
    case error(WebSocketError)
    /// The connection is over: its close code and reason (the peer's, a failure's, ours when the
    /// peer never answered, or 1006 when the connection dropped without a close handshake).
    /// Always the last event.
    case done(CloseResult)
}

/// A WebSocket connection bound to a message type: the reference's channels, in Swift.
///
/// ```swift
/// app.get("/sockets/rooms/:name", Sockets.json(Message.self)) { params, socket in
///     for await event in socket.events {
///         switch event {
///         case .message(let msg): try await socket.send(msg)   // echo
///         case .error(let error): print("error:", error)
///         case .done(let result): print("closed:", result.code, result.reason); return
///         }
///     }
/// }
/// ```
///
/// - ``receiver``: messages only; ``errors``: errors only; ``events``: both, then `.done`. Each
///   message or error is delivered once, to whichever of them asks first.
/// - ``send(_:)-(Message)`` (or ``sender``) suspends while `sendChannelBuffer` messages wait unsent.
/// - ``disconnect(_:reason:)`` starts the close handshake; ``done`` waits for the end.
/// When `recvChannelBuffer` messages wait unread, the server stops reading the socket.
public final class Socket<Message: Sendable>: Sendable {
    /// The request that opened the connection.
    public let request: SocketRequest
    let inbox: Inbox
    let codec: SocketCodec<Message>
    private let allocator: ByteBufferAllocator

    init(request: SocketRequest, sender: WebSocketSender, allocator: ByteBufferAllocator, codec: SocketCodec<Message>,
         recvChannelBuffer: Int) {
        self.request = request
        self.codec = codec
        self.allocator = allocator
        self.inbox = Inbox(capacity: recvChannelBuffer, sender: sender)
    }

    /// The connection's sender, which the inbox holds too (one copy per connection).
    private var output: WebSocketSender { inbox.sender }

    /// The subprotocol agreed in the handshake, if any.
    public var subprotocol: String? { request.subprotocol }

    /// The messages from the peer, decoded; ends when the connection does.
    public var receiver: Receiver { Receiver(inbox: inbox, view: .messages) }

    /// The errors of the connection; ends when the connection does.
    public var errors: Errors { Errors(inbox: inbox, view: .errors) }

    /// Messages and errors in order, then `.done` with the close code.
    public var events: Events { Events(inbox: inbox, view: .events) }

    /// A handle for sending, to pass to other tasks (for example a room that broadcasts).
    public var sender: Sender { Sender(socket: self) }

    /// Waits for the connection to end and returns how it ended: the close code and reason (the
    /// peer's, a failure's, ours when the peer never answered, or 1006 when TCP dropped).
    public var done: CloseResult {
        get async { await inbox.waitDone() }
    }

    /// Whether the connection has ended.
    public var isDone: Bool { inbox.isFinished }

    /// Sends a message. Suspends while `sendChannelBuffer` messages wait unsent.
    ///
    /// Runs on the caller's isolation (`nonisolated(nonsending)`): the message is encoded where
    /// `send` is called, and a send that does not wait switches no executor.
    ///
    /// - Important: because `send` waits for a peer that does not read, a loop that sends to
    ///   *other* sockets from a connection's handler (a naive room broadcast) stalls on the
    ///   slowest member, and while it waits its own socket is not read: one client that stops
    ///   reading stops the whole room. Never await another connection's `send` from a handler.
    ///   Use the library's hub (`Hub`, Sources/Sockets/Hub), or give each recipient a bounded
    ///   outbox drained by its own task and drop (or disconnect) a member whose outbox is full:
    ///   ```swift
    ///   let (outbox, feed) = AsyncStream.makeStream(of: PreparedMessage.self,
    ///                                               bufferingPolicy: .bufferingNewest(64))
    ///   Task { for await m in outbox { try? await socket.send(m) } }   // one task per member
    ///   // the room: feed.yield(prepared) for every member (never suspends)
    ///   ```
    ///
    /// - Throws: `WebSocketError/closed` once the connection is closing or closed;
    ///   `WebSocketError/outgoingMessageTooBig` for a message over `maxMessageSize`; an encoding
    ///   error from the message type (JSON).
    public nonisolated(nonsending) func send(_ message: Message) async throws {
        let frame = try codec.encode(message, allocator)
        try await send(frame: frame)
    }

    /// Sends a message, choosing per message whether permessage-deflate may compress it (when the
    /// route enables compression and the client agreed). `compress: false` sends it as it is:
    /// for data that is already compressed, or secrets that should not share a compression window
    /// with text an attacker chooses.
    public nonisolated(nonsending) func send(_ message: Message, compress: Bool) async throws {
        var frame = try codec.encode(message, allocator)
        if !compress {
            switch frame {
            case .text(let b): frame = .uncompressed(.text(b))
            case .binary(let b): frame = .uncompressed(.binary(b))
            default: break
            }
        }
        try await send(frame: frame)
    }

    /// Encodes a message once, for sending to many sockets (a room's broadcast): every
    /// ``send(_:)-(PreparedMessage)`` shares the same payload bytes; only the 2–10 byte frame
    /// header is written per recipient.
    ///
    /// - Throws: an encoding error from the message type (JSON).
    public func prepare(_ message: Message) throws -> PreparedMessage {
        PreparedMessage(frame: try codec.encode(message, allocator))
    }

    /// Sends a message prepared with ``prepare(_:)`` (by this or any other socket of the same
    /// route kind). Suspends like ``send(_:)-(Message)``.
    public nonisolated(nonsending) func send(_ prepared: PreparedMessage) async throws {
        try await send(frame: prepared.frame)
    }

    /// Sends an already encoded frame: checked here (closed, too big), then queued for the
    /// connection's event loop, which takes queued frames in batches (one hop and one flush per
    /// batch). Suspends only while `sendChannelBuffer` frames wait.
    nonisolated(nonsending) func send(frame: WebSocketOutbound) async throws {
        // The queue is closed before the inbox finishes: a closed connection refuses here.
        while true {
            switch inbox.enqueueIfRoom(frame) {
            case .queued: return
            case .tooBig: throw WebSocketError.outgoingMessageTooBig
            case .closed: throw WebSocketError.closed
            case .full: // `sendChannelBuffer` frames wait
                guard await inbox.waitForRoom() else { throw WebSocketError.closed }
            }
        }
    }

    /// Starts the close handshake with `code` (the reference's `disconnect <- code`), after the
    /// messages sent before; ``done`` then waits for the end. A code that may not be sent
    /// (1005, 1006, 1015, …) sends a close frame without a code.
    ///
    /// - Parameters:
    ///   - code: the close code; default `CloseCode/normalClosure`.
    ///   - reason: up to 123 bytes of UTF-8, cut at a character boundary if longer.
    public func disconnect(_ code: CloseCode = .normalClosure, reason: String = "") async {
        output.close(code, reason: reason)
    }

    /// Sends a ping and waits for the peer's pong: returns the round-trip time.
    ///
    /// Any pong received after the ping was queued answers it (RFC 6455 §5.5.3 lets a peer
    /// answer only the latest of several pings, and the server's own keep-alive pings get pongs
    /// too, so pongs are not matched one to one).
    ///
    /// - Parameter timeout: how long to wait for the pong. Default 10 s.
    /// - Returns: the time from queueing the ping to receiving a pong.
    /// - Throws: `WebSocketError/pingTimeout` when no pong came within `timeout` (the
    ///   connection stays open: close it if that is what you want); `WebSocketError/closed` when
    ///   the connection is closing or closed, or ends while waiting. Cancelling the calling task
    ///   does not end the wait early: `timeout` bounds it.
    @discardableResult
    public func ping(timeout: Duration = .seconds(10)) async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        let id = inbox.registerPing()
        guard !inbox.isFinished, output.enqueue(.ping(ByteBuffer()), compress: false) == .queued else {
            inbox.failPing(id, WebSocketError.closed)
            _ = try? await inbox.waitPing(id)
            throw WebSocketError.closed
        }
        let inbox = self.inbox
        let timer = Task {
            try await Task.sleep(for: timeout)
            inbox.failPing(id, WebSocketError.pingTimeout)
        }
        defer { timer.cancel() }
        try await inbox.waitPing(id)
        return clock.now - start
    }

    /// Called on the event loop when a pong arrives: every ping sent so far is answered.
    func pongReceived() { inbox.answerPings() }

    /// Called when the connection has ended, with the outcome the connection's state machine
    /// recorded (the peer's close code and reason, the failure's, the code we sent, or 1006).
    func connectionEnded(_ result: CloseResult) {
        inbox.failPings(WebSocketError.closed)
        inbox.finish(result)
    }

    /// The messages of a socket (``receiver``).
    public typealias Receiver = SocketSequence<Message, Message>
    /// The errors of a socket (``errors``).
    public typealias Errors = SocketSequence<Message, WebSocketError>
    /// Messages, errors and the final `.done` of a socket (``events``).
    public typealias Events = SocketSequence<Message, SocketEvent<Message>>

    /// A sending handle that can be stored and used from other tasks.
    public struct Sender: Sendable {
        let socket: Socket<Message>
        /// Sends a message; see ``Socket/send(_:)-(Message)``.
        public nonisolated(nonsending) func send(_ message: Message) async throws { try await socket.send(message) }
        /// Sends a prepared message; see ``Socket/send(_:)-(PreparedMessage)``.
        public nonisolated(nonsending) func send(_ prepared: PreparedMessage) async throws { try await socket.send(prepared) }
        /// Encodes once for many sends; see ``Socket/prepare(_:)``.
        public func prepare(_ message: Message) throws -> PreparedMessage { try socket.prepare(message) }
        /// Starts the close handshake; see ``Socket/disconnect(_:reason:)``.
        public func disconnect(_ code: CloseCode = .normalClosure, reason: String = "") async {
            await socket.disconnect(code, reason: reason)
        }
        /// Whether the connection has ended; see ``Socket/isDone``.
        public var isDone: Bool { socket.isDone }
    }
}

/// One view of a socket's inbox as an `AsyncSequence`: ``Socket/receiver`` (messages),
/// ``Socket/errors`` (errors) or ``Socket/events`` (both, then `.done`). Each entry is delivered
/// once, to whichever view takes it first; every view ends when the connection does (or when the
/// iterating task is cancelled).
public struct SocketSequence<Message: Sendable, Element: Sendable>: AsyncSequence, Sendable {
    enum View: Sendable {
        case messages, errors, events

        var want: Inbox.Want {
            switch self {
            case .messages: return .message
            case .errors: return .error
            case .events: return .any
            }
        }
    }
    let inbox: Inbox
    let view: View

    /// Makes an iterator.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inbox: inbox, view: view) }

    /// Iterates one view of the inbox.
    public struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline let inbox: Inbox
        let view: View
        var ended = false
        /// The last ``poll()`` found nothing, in the connection's own task (see `Inbox.wait`).
        @usableFromInline var waitAsOwner = false

        init(inbox: Inbox, view: View) {
            self.inbox = inbox
            self.view = view
        }

        /// The next element, or nil at the end.
        public mutating func next() async -> Element? { await next(isolation: nil) }

        /// The next element, or nil at the end (what `for await` calls).
        ///
        /// Inlined into the caller's loop: an element that waits already is taken synchronously,
        /// so the `await` neither suspends nor switches executors (each switch takes a lock in the
        /// concurrency runtime: a 32-byte echo with 16 in flight switched twice per message
        /// before), and the connection's own task waits right here, so its resume makes one
        /// switch (six before).
        @inlinable
        public mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
            if let now = poll() { return now }
            if waitAsOwner {
                // The connection's own task: no cancellation handler (see `Inbox.wait`), and the
                // continuation here, in the caller's loop: each async call level between the
                // loop and the continuation was one more executor switch on every resume.
                let (inbox, want) = (inbox, want)
                let entry = await withUnsafeContinuation(isolation: actor) { inbox.register(want, id: 0, $0) }
                if let now = received(entry) { return now }
            }
            return await wait(isolation: actor)
        }

        /// What the reader asks the inbox for.
        @usableFromInline var want: Inbox.Want { view.want }

        /// After the connection's own wait: `.some` with the element (or the end), or nil when
        /// ``wait(isolation:)`` must go on (`events`, whose `.done` may still have to wait).
        @usableFromInline
        mutating func received(_ entry: Inbox.Entry?) -> Element?? {
            if view == .events, case .none = entry {
                ended = true
                if let result = inbox.takeDone() { return .some(Self.done(result)) }
                if Task.isCancelled { return .some(nil) }
                return nil // `.done` waits for the end of the connection
            }
            return .some(Self.convert(entry, view, ended: &ended))
        }

        /// Without suspending: `.some` with the next element (or the end), or nil when the caller
        /// must ``wait(isolation:)``.
        @usableFromInline
        mutating func poll() -> Element?? {
            if ended { return .some(nil) }
            var miss = Inbox.Miss.wait
            if let entry = inbox.poll(view.want, miss: &miss) { return .some(Self.convert(entry, view, ended: &ended)) }
            switch miss {
            case .finished:
                ended = true
                guard view == .events else { return .some(nil) }
                if let result = inbox.takeDone() { return .some(Self.done(result)) }
                if Task.isCancelled { return .some(nil) }
                return nil // `.done` waits for the end of the connection
            case .wait, .waitAsOwner:
                waitAsOwner = miss == .waitAsOwner
                return nil
            }
        }

        /// Waits for the next element, after ``poll()`` found none.
        ///
        /// An idle connection's task is suspended in here, so this async frame, like every frame
        /// under it, is memory per connection: the entry is converted in synchronous code apart,
        /// whose generic temporaries live on the thread's stack for a moment.
        @usableFromInline
        mutating func wait(isolation actor: isolated (any Actor)?) async -> Element? {
            if ended { return Self.done(await inbox.waitDone()) } // `events` after the last entry
            let entry = await inbox.wait(view.want)
            if view == .events, case .none = entry {
                ended = true
                if let result = inbox.takeDone() { return Self.done(result) }
                if Task.isCancelled { return nil }
                return Self.done(await inbox.waitDone())
            }
            return Self.convert(entry, view, ended: &ended)
        }

        @inline(never)
        private static func convert(_ entry: Inbox.Entry?, _ view: View, ended: inout Bool) -> Element? {
            guard let entry else {
                ended = true
                return nil
            }
            switch view {
            case .messages where entry.isMessage, .errors where !entry.isMessage:
                return entry.value as? Element
            case .events where entry.isMessage:
                return SocketEvent<Message>.message(entry.value as! Message) as? Element
            case .events:
                return SocketEvent<Message>.error(entry.value as! WebSocketError) as? Element
            default:
                ended = true
                return nil
            }
        }

        @inline(never)
        private static func done(_ result: CloseResult) -> Element? { SocketEvent<Message>.done(result) as? Element }
    }
}

extension WebSocketError {
    /// ``Socket/ping(timeout:)`` got no pong within its timeout (the connection stays open).
    public static let pingTimeout = WebSocketError(code: .goingAway, reason: "no pong within the ping's timeout")
}

/// A message encoded once, to send to many sockets without encoding or copying it again.
public struct PreparedMessage: Sendable {
    let frame: WebSocketOutbound
}
