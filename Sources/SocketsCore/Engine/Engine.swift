internal import CWebSocket
import NIOCore

/// The C engine of one connection, owned by one event loop.
///
/// Allocates the engine once and frees it in `deinit`. It is not `Sendable`: it lives inside the
/// channel handler, on the channel's event loop.
final class Engine {
    /// Set once in `init` (after the reassembly state, since the C engine is given `self`).
    private var conn: OpaquePointer!
    /// The pool the engine borrows inflaters from (shared mode), kept alive as long as the engine.
    private let inflaters: InflaterPool?

    // Reassembly (`cws_config.reassembly`, see the extension below): here rather than in an
    // object of its own, which was one more allocation per connection.
    /// The allocator of the buffers `parse` hands on (reassembled messages, copies of pings): the
    /// channel's, once the handler is added.
    var allocator = ByteBufferAllocator()
    /// The buffer the engine is reassembling into; its storage starts at the pointer the engine has.
    private var pending: ByteBuffer?
    #if DEBUG
    // For tests only (debug builds): not memory per connection in a release build.
    /// Messages handed over as their reassembly buffer, and messages copied instead (small ones,
    /// see `take`).
    private(set) var handedOver = 0
    private(set) var copied = 0
    /// The storage base last given to the engine (by alloc or realloc).
    private(set) var lastBase: UnsafeMutableRawPointer?
    #endif

    /// - Throws: ``WebSocketError`` if the C engine refuses the limits (they are checked earlier
    ///   by ``WebSocketConfiguration/validate()``, so this means a bug) or cannot allocate.
    /// - Parameter inflaters: a pool to borrow inflaters from, one message at a time (only with
    ///   an agreement in which the client resets after every message), or nil for the engine's own.
    init(maxMessageSize: Int, maxFrameSize: Int, allowedRSV: UInt8 = 0, compression: CompressionAgreement? = nil,
         inflaters: InflaterPool? = nil, role: WebSocketRole = .server) throws {
        var cfg = cws_config()
        cws_config_init(&cfg, role.cRole)
        cfg.inflaters = inflaters?.handle
        self.inflaters = inflaters
        cfg.max_message_size = UInt64(maxMessageSize)
        cfg.max_frame_size = UInt64(maxFrameSize)
        cfg.allowed_rsv = allowedRSV
        // Copied at cws_conn_new; `user` is self, which outlives the C engine (freed in deinit).
        var hooks = cws_allocator(alloc: Engine.cAlloc, realloc: Engine.cRealloc, free: Engine.cFree,
                                  user: Unmanaged.passUnretained(self).toOpaque())
        var c: OpaquePointer?
        let st: Int32 = withUnsafePointer(to: &hooks) { hooks in
            cfg.reassembly = hooks
            guard let compression else { return cws_conn_new(&cfg, &c) }
            // The engine copies the parameters at cws_conn_new.
            var params = compression.params
            return withUnsafePointer(to: &params) { p in
                cfg.pmd = p
                return cws_conn_new(&cfg, &c)
            }
        }
        guard st == CWS_OK.rawValue, let c else {
            throw WebSocketError(code: 1011, reason: String(cString: cws_strerror(st)))
        }
        self.conn = c
    }

    deinit { if let conn { cws_conn_free(conn) } }

    /// One step of parsing.
    enum Step {
        /// A message whose payload lies in the parsed bytes at `offset` (relative to the start of
        /// the bytes given to `parse`), unmasked in place.
        case messageInPlace(text: Bool, offset: Int, length: Int)
        /// A message reassembled by the engine (split across reads, fragmented or inflated): the
        /// buffer it was reassembled in, handed over (see `take(_:)`).
        case message(text: Bool, ByteBuffer)
        case ping(ByteBuffer)
        case pong
        /// A close frame: the peer's code (1005 when none) and reason.
        case close(code: UInt16, reason: String)
        /// A protocol violation: the close code to send and a short reason.
        case failure(code: UInt16, reason: String)
        /// Input after a close frame: discarded.
        case closed
        /// All input used; nothing complete yet.
        case needMore
    }

    /// Parses from `bytes`, which the engine unmasks in place, and returns one step and how many
    /// bytes it used. A reassembled message comes in the buffer it was reassembled in (no copy;
    /// a small one is copied compactly, see `take(_:)`); other payloads the engine owns (pings)
    /// are copied into buffers from `allocator` at once, since they live only until the next call.
    func parse(_ bytes: UnsafeMutableRawBufferPointer) -> (Step, Int) {
        var used = 0
        var ev = cws_event()
        let st = cws_conn_parse(conn, bytes.baseAddress, bytes.count, &used, &ev)
        if st == CWS_OK.rawValue {
            let payload = ev.length > 0 ? UnsafeRawBufferPointer(start: ev.data, count: ev.length) : UnsafeRawBufferPointer(start: nil, count: 0)
            switch Int32(ev.type) {
            case Int32(CWS_EVENT_TEXT.rawValue), Int32(CWS_EVENT_BINARY.rawValue):
                let text = Int32(ev.type) == Int32(CWS_EVENT_TEXT.rawValue)
                if ev.in_input == 1 {
                    return (.messageInPlace(text: text, offset: ev.offset, length: ev.length), used)
                }
                return (.message(text: text, take(payload)), used)
            case Int32(CWS_EVENT_PING.rawValue):
                var buf = allocator.buffer(capacity: ev.length)
                buf.writeBytes(payload)
                return (.ping(buf), used)
            case Int32(CWS_EVENT_PONG.rawValue):
                return (.pong, used)
            default:
                return (.close(code: ev.close_code, reason: String(decoding: payload, as: UTF8.self)), used)
            }
        }
        if st == CWS_WANT_READ.rawValue { return (.needMore, used) }
        if st == CWS_CLOSED.rawValue { return (.closed, used) }
        return (.failure(code: ev.close_code == 0 ? 1011 : ev.close_code, reason: String(cString: cws_strerror(st))), used)
    }

    /// Writes a frame header for a server (unmasked) frame into `buffer`.
    static func writeHeader(into buffer: inout ByteBuffer, opcode: UInt8, length: Int, fin: Bool = true, rsv: UInt8 = 0) {
        // (rsv 0x40 = RSV1: a compressed message, RFC 7692 §6)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(CWS_MAX_HEADER_SIZE)) { out in
            var written = 0
            let st = cws_frame_header_write(out.baseAddress, out.count, &written, fin, rsv, opcode, UInt64(length), nil)
            precondition(st == CWS_OK.rawValue, "frame header for a valid frame")
            return written
        }
    }

    /// Writes a frame header for a client (masked) frame into `buffer`, with `maskKey` (the four
    /// key bytes in memory order, as on the wire). The payload must then be masked with the same
    /// key (``mask(_:key:)``).
    static func writeHeader(into buffer: inout ByteBuffer, opcode: UInt8, length: Int, rsv: UInt8 = 0, maskKey: UInt32) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(CWS_MAX_HEADER_SIZE)) { out in
            var written = 0
            let st = withUnsafeBytes(of: maskKey) { key in
                cws_frame_header_write(out.baseAddress, out.count, &written, true, rsv, opcode, UInt64(length), key.baseAddress)
            }
            precondition(st == CWS_OK.rawValue, "frame header for a valid frame")
            return written
        }
    }

    /// XORs `bytes` in place with `maskKey` from phase 0 (RFC 6455 §5.3).
    static func mask(_ bytes: UnsafeMutableRawBufferPointer, key maskKey: UInt32) {
        guard bytes.count > 0 else { return }
        withUnsafeBytes(of: maskKey) { key in
            _ = cws_mask(bytes.baseAddress, bytes.count, key.baseAddress, 0)
        }
    }

    /// Writes a whole close frame into `buffer`, masked with `maskKey` when given (client role).
    /// An invalid code is replaced by none (an empty close frame), and the reason is cut to fit
    /// at a character boundary.
    static func writeClose(into buffer: inout ByteBuffer, code: UInt16?, reason: String, maskKey: UInt32? = nil) {
        var reasonBytes = Array(reason.utf8.prefix(123))
        while !reasonBytes.isEmpty, String(validating: reasonBytes, as: UTF8.self) == nil { reasonBytes.removeLast() }
        let wireCode: UInt16 = code.map { cws_close_code_is_valid($0) ? $0 : 0 } ?? 0
        if wireCode == 0 { reasonBytes = [] }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(CWS_MAX_CONTROL_FRAME_SIZE)) { out in
            var written = 0
            let st = reasonBytes.withUnsafeBytes { r in
                if let maskKey {
                    return withUnsafeBytes(of: maskKey) { key in
                        cws_close_frame_write(out.baseAddress, out.count, &written, wireCode, r.baseAddress, r.count, key.baseAddress)
                    }
                }
                return cws_close_frame_write(out.baseAddress, out.count, &written, wireCode, r.baseAddress, r.count, nil)
            }
            precondition(st == CWS_OK.rawValue, "close frame with a checked code and reason")
            return written
        }
    }

    /// Whether `code` may be sent in a close frame (RFC 6455 §7.4).
    static func isValidCloseCode(_ code: UInt16) -> Bool { cws_close_code_is_valid(code) }

    static let opText: UInt8 = 0x1
    static let opBinary: UInt8 = 0x2
    static let opClose: UInt8 = 0x8
    static let opPing: UInt8 = 0x9
    static let opPong: UInt8 = 0xA
}

@available(*, unavailable)
extension Engine: Sendable {}

/// The C engine's reassembly allocator (`cws_config.reassembly`): each reassembly buffer is the
/// storage of a ByteBuffer, so a message that did not arrive whole in one read is copied once (by
/// the engine, from the reads into this buffer) and handed on as that ByteBuffer, not copied a
/// second time. The engine owns at most one reassembly buffer at a time: `pending`, the only
/// reference to its storage (so growing it reallocates in place, never copies on write). When the
/// engine delivers the message it forgets the buffer; `take(_:)` takes `pending`.
/// If the engine fails or is freed mid-message, it frees the buffer through `cFree`.
extension Engine {
    /// The first byte of the storage of `pending` (the slice of a fresh buffer starts at its
    /// storage's first byte, and `pending` holds the only reference, so this never copies).
    private func base() -> UnsafeMutableRawPointer? {
        pending?.withVeryUnsafeMutableBytes { $0.baseAddress }
    }

    fileprivate func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        // Never two at once: refuse (the engine reports CWS_ERR_NOMEM) rather than drop storage
        // the engine may still point at.
        guard pending == nil, size > 0 else { return nil }
        pending = allocator.buffer(capacity: size)
        return given(base())
    }

    fileprivate func reallocate(_ ptr: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
        guard let ptr else { return allocate(size) }
        guard pending != nil, base() == ptr else { return nil }
        // reserveCapacity keeps the bytes already stored whatever the indices are (NIO: with the
        // only reference and the whole storage as its slice it reallocs the storage; otherwise it
        // would copy the readable bytes): make them all readable so both ways keep them.
        pending!.moveWriterIndex(to: pending!.capacity)
        pending!.reserveCapacity(size)
        return given(base())
    }

    private func given(_ base: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        #if DEBUG
        lastBase = base
        #endif
        return base
    }

    fileprivate func free(_ ptr: UnsafeMutableRawPointer?) {
        guard let ptr, pending != nil, base() == ptr else { return }
        pending = nil
    }

    /// The message of a handed-over event, `payload` (which starts at the first byte of the
    /// buffer the engine reassembled it in), as a ByteBuffer.
    ///
    /// A message of at most a quarter of its buffer's capacity is copied into a buffer of its own
    /// size instead. The engine's first reassembly buffer is 1 KiB (up to 4 KiB after inflated
    /// messages that filled theirs) and grows by doubling (NIO rounds capacities up to a power of
    /// two), so that is only a message of at most a quarter of that first buffer (256 bytes to
    /// 1 KiB): any longer message fills more than a quarter of its buffer. Such a copy costs
    /// little (before the handover every message was copied), while keeping the whole buffer
    /// would make a small held message cost many times what the handler's inbox accounts for it
    /// (its readable bytes plus 64): a 16-byte message held in 1 KiB, 13 times.
    func take(_ payload: UnsafeRawBufferPointer) -> ByteBuffer {
        guard payload.count > 0 else { return allocator.buffer(capacity: 0) }
        let matches = pending != nil && UnsafeRawPointer(base()) == payload.baseAddress
        guard matches, var buffer = pending, payload.count > buffer.capacity / 4 else {
            // Not the pending buffer (never expected: then the engine still owns the payload,
            // valid until the next call), or a small message: a copy of its own size.
            #if DEBUG
            copied += 1
            #endif
            var copy = allocator.buffer(capacity: payload.count)
            copy.writeBytes(payload)
            if matches { pending = nil }
            return copy
        }
        pending = nil
        buffer.moveReaderIndex(to: 0)
        buffer.moveWriterIndex(to: payload.count)
        #if DEBUG
        handedOver += 1
        #endif
        return buffer
    }

    static let cAlloc: @convention(c) (Int, UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { size, user in
        Unmanaged<Engine>.fromOpaque(user!).takeUnretainedValue().allocate(size)
    }
    static let cRealloc: @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = {
        ptr, size, user in
        Unmanaged<Engine>.fromOpaque(user!).takeUnretainedValue().reallocate(ptr, size)
    }
    static let cFree: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { ptr, user in
        Unmanaged<Engine>.fromOpaque(user!).takeUnretainedValue().free(ptr)
    }
}


/// Which end of a connection a ``WebSocketHandler`` is (RFC 6455 §5.1): a server receives masked
/// frames and sends unmasked ones; a client the reverse, with a fresh random masking key per frame.
public enum WebSocketRole: Sendable, Hashable {
    /// The accepting end (what ``WebSocketUpgrader`` installs).
    case server
    /// The connecting end (what ``WebSocketClient`` installs).
    case client

    var cRole: cws_role { self == .server ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT }
}
