public import NIOCore
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// Sockets: WebSocket connections as channels for Swift servers.
///
/// The namespace of the socket middleware, as in the reference: ``messages()``, ``bytes()``,
/// ``json(_:)`` and ``raw()`` each make a ``SocketSpec`` (a codec and ``Options``) to put in a
/// route before the handler that receives the ``Socket``. The protocol engine is the C module
/// `CWebSocket`; the NIO layer is `SocketsCore`, re-exported here.
public enum Sockets {}

/// How messages of one type travel: decoded once per incoming message, encoded once per send.
///
/// Make one for any format (MessagePack, CBOR, protobuf, a line protocol) and put it in a route
/// with ``Sockets/codec(_:_:)`` or ``SocketSpec/init(codec:options:)``:
/// ```swift
/// let csv = SocketCodec<[Int]>(
///     decode: { isText, payload in
///         guard isText else { throw SocketDecodeFailure.unsupportedType("binary message on a CSV socket") }
///         let fields = String(buffer: payload).split(separator: ",")
///         let numbers = fields.compactMap { Int($0) }
///         guard numbers.count == fields.count else { throw SocketDecodeFailure.malformed("not a list of integers") }
///         return numbers
///     },
///     encode: { numbers, allocator in
///         .text(allocator.buffer(string: numbers.map(String.init).joined(separator: ",")))
///     })
/// app.get("/sum", try Sockets.codec(csv)) { _, socket in … }
/// ```
public struct SocketCodec<Message: Sendable>: Sendable {
    /// Why an incoming message did not become a `Message` (``SocketDecodeFailure``).
    public typealias DecodeFailure = SocketDecodeFailure

    let decode: @Sendable (_ isText: Bool, _ payload: ByteBuffer) throws(DecodeFailure) -> Message
    let encode: @Sendable (_ message: Message, _ allocator: ByteBufferAllocator) throws -> WebSocketOutbound

    /// Creates a codec from two functions.
    ///
    /// - Parameters:
    ///   - decode: from a complete message (`isText` tells the frame type) to a value. Called on
    ///     the connection's event loop, once per message: keep it quick. Throw
    ///     ``SocketDecodeFailure/malformed(_:)`` (or any other error: it counts as malformed) to
    ///     report the message on `errors` with 1007 and skip it, and
    ///     ``SocketDecodeFailure/unsupportedType(_:)`` to close the connection with 1003.
    ///   - encode: from a value to the frame to send (`.text` or `.binary`); an error it throws
    ///     is thrown by `send`.
    public init(
        decode: @escaping @Sendable (_ isText: Bool, _ payload: ByteBuffer) throws -> Message,
        encode: @escaping @Sendable (_ message: Message, _ allocator: ByteBufferAllocator) throws -> WebSocketOutbound
    ) {
        self.decode = { (isText, payload) throws(SocketDecodeFailure) in
            do {
                return try decode(isText, payload)
            } catch let failure as SocketDecodeFailure {
                throw failure
            } catch {
                throw .malformed("\(error)")
            }
        }
        self.encode = encode
    }

    /// The library's own codecs: a decoder that throws only ``SocketDecodeFailure``.
    init(
        typedDecode decode: @escaping @Sendable (_ isText: Bool, _ payload: ByteBuffer) throws(SocketDecodeFailure) -> Message,
        encode: @escaping @Sendable (_ message: Message, _ allocator: ByteBufferAllocator) throws -> WebSocketOutbound
    ) {
        self.decode = decode
        self.encode = encode
    }
}

/// Why an incoming message did not become a value of the socket's message type.
public enum SocketDecodeFailure: Error, Sendable {
    /// A frame type this socket does not take (binary on a text socket, text on a bytes
    /// socket): the connection is closed with 1003, as RFC 6455 §7.4.1 intends.
    case unsupportedType(String)
    /// The content did not decode (JSON that does not match the type): reported on `errors`
    /// with code 1007, the message is skipped, and the connection stays open.
    case malformed(String)
}

/// A socket route's middleware: the message type, how it is coded, and the options. Put it in a
/// route, followed by the handler that receives the ``Socket``:
/// `app.get("/chat", Sockets.messages()) { params, socket in ... }`.
public struct SocketSpec<Message: Sendable>: Sendable {
    /// The codec of the route's messages.
    public let codec: SocketCodec<Message>
    /// The route's options, already validated.
    public let options: Options

    /// A socket middleware with your own codec (see ``SocketCodec``) and options.
    ///
    /// - Parameters:
    ///   - codec: how messages are decoded and encoded.
    ///   - options: see ``Options``; checked here.
    /// - Throws: `OptionsError` naming a wrong option.
    public init(codec: SocketCodec<Message>, options: Options = Options()) throws(OptionsError) {
        try options.validate()
        self.init(checked: codec, options: options)
    }

    /// With options already validated.
    init(checked codec: SocketCodec<Message>, options: Options) {
        self.codec = codec
        self.options = options
    }
}

extension Sockets {
    /// Text messages as `String`: the reference's `sockets.Messages`. A binary message closes the
    /// connection with 1003 (unsupported data). Default options.
    public static func messages() -> SocketSpec<String> {
        SocketSpec(checked: stringCodec, options: Options())
    }

    /// Text messages as `String`, with options.
    ///
    /// - Parameter options: see ``Options``.
    /// - Throws: `OptionsError` naming a wrong option.
    public static func messages(_ options: Options) throws(OptionsError) -> SocketSpec<String> {
        try options.validate()
        return SocketSpec(checked: stringCodec, options: options)
    }

    /// Binary messages as `ByteBuffer` (no copy: the buffer is where the bytes were read): the
    /// reference's `sockets.ByteSliceMessages`. A text message closes the connection with 1003.
    public static func bytes() -> SocketSpec<ByteBuffer> {
        SocketSpec(checked: bytesCodec, options: Options())
    }

    /// Binary messages as `ByteBuffer`, with options.
    ///
    /// - Parameter options: see ``Options``.
    /// - Throws: `OptionsError` naming a wrong option.
    public static func bytes(_ options: Options) throws(OptionsError) -> SocketSpec<ByteBuffer> {
        try options.validate()
        return SocketSpec(checked: bytesCodec, options: options)
    }

    /// JSON messages in text frames, decoded into `T`: the reference's `sockets.JSON`.
    ///
    /// A message that is not valid JSON for `T` is reported on ``Socket/errors`` (and
    /// ``Socket/events``) as a 1007 error and skipped; the connection stays open. A binary message
    /// closes the connection with 1003. Sends encode `T` as JSON text.
    ///
    /// - Parameter type: the message type.
    public static func json<T: Codable & Sendable>(_ type: T.Type) -> SocketSpec<T> {
        SocketSpec(checked: jsonCodec(T.self), options: Options())
    }

    /// JSON messages decoded into `T`, with options.
    ///
    /// - Parameters:
    ///   - type: the message type.
    ///   - options: see ``Options``.
    /// - Throws: `OptionsError` naming a wrong option.
    public static func json<T: Codable & Sendable>(_ type: T.Type, _ options: Options) throws(OptionsError) -> SocketSpec<T> {
        try options.validate()
        return SocketSpec(checked: jsonCodec(T.self), options: options)
    }

    /// Messages in your own format: a codec of yours (see ``SocketCodec``), with options.
    ///
    /// - Parameters:
    ///   - codec: how messages are decoded and encoded.
    ///   - options: see ``Options``; default options when omitted.
    /// - Throws: `OptionsError` naming a wrong option.
    public static func codec<T: Sendable>(_ codec: SocketCodec<T>, _ options: Options = Options()) throws(OptionsError) -> SocketSpec<T> {
        try SocketSpec(codec: codec, options: options)
    }

    /// JSON messages with your own encoder and decoder (date and key strategies, output
    /// formatting): `Sockets.json(Event.self, encoder: encoder, decoder: decoder)`. Otherwise as
    /// ``json(_:)``: a message that does not decode is reported as a 1007 error and skipped.
    ///
    /// - Parameters:
    ///   - type: the message type.
    ///   - encoder: encodes every message sent (shared by the route's connections; do not change
    ///     it once the route is set up).
    ///   - decoder: decodes every message received (shared likewise).
    ///   - options: see ``Options``; default options when omitted.
    /// - Throws: `OptionsError` naming a wrong option.
    public static func json<T: Codable & Sendable>(_ type: T.Type, encoder: JSONEncoder, decoder: JSONDecoder,
                                                   _ options: Options = Options()) throws(OptionsError) -> SocketSpec<T> {
        try SocketSpec(codec: jsonCodec(T.self, encoder: encoder, decoder: decoder), options: options)
    }

    /// Text and binary messages as they arrive, as `WebSocketMessage` (no decoding, no copy).
    /// Default options.
    public static func raw() -> SocketSpec<WebSocketMessage> {
        SocketSpec(checked: rawCodec, options: Options())
    }

    /// Text and binary messages as they arrive, with options.
    ///
    /// - Parameter options: see ``Options``.
    /// - Throws: `OptionsError` naming a wrong option.
    public static func raw(_ options: Options) throws(OptionsError) -> SocketSpec<WebSocketMessage> {
        try options.validate()
        return SocketSpec(checked: rawCodec, options: options)
    }

    static let rawCodec = SocketCodec<WebSocketMessage>(
        typedDecode: { (isText, payload) throws(SocketCodec<WebSocketMessage>.DecodeFailure) in
            isText ? .text(payload) : .binary(payload)
        },
        encode: { message, _ in
            switch message {
            case .text(let b): return .text(b)
            case .binary(let b): return .binary(b)
            }
        }
    )

    static let stringCodec = SocketCodec<String>(
        typedDecode: { (isText, payload) throws(SocketCodec<String>.DecodeFailure) in
            guard isText else { throw .unsupportedType("binary message on a text socket") }
            // The engine validated the UTF-8, so this decoding repairs nothing.
            return String(buffer: payload)
        },
        encode: { message, allocator in .text(allocator.buffer(string: message)) }
    )

    static let bytesCodec = SocketCodec<ByteBuffer>(
        typedDecode: { (isText, payload) throws(SocketCodec<ByteBuffer>.DecodeFailure) in
            guard !isText else { throw .unsupportedType("text message on a binary socket") }
            return payload
        },
        encode: { message, _ in .binary(message) }
    )

    static func jsonCodec<T: Codable & Sendable>(_: T.Type, encoder: JSONEncoder? = nil, decoder: JSONDecoder? = nil) -> SocketCodec<T> {
        SocketCodec<T>(
            typedDecode: { (isText, payload) throws(SocketCodec<T>.DecodeFailure) in
                guard isText else { throw .unsupportedType("binary message on a JSON socket") }
                do {
                    return try (decoder ?? JSONDecoder()).decode(T.self, from: Data(payload.readableBytesView))
                } catch {
                    throw .malformed("message is not valid JSON for \(T.self)")
                }
            },
            encode: { message, allocator in
                let data = try (encoder ?? JSONEncoder()).encode(message)
                var buffer = allocator.buffer(capacity: data.count)
                buffer.writeBytes(data)
                return .text(buffer)
            }
        )
    }
}
