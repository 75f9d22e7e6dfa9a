internal import CWebSocket
import NIOCore
import NIOPosix

/// permessage-deflate settings (RFC 7692). The client's offer decides within what it allows;
/// these decide the rest.
///
/// Two ways to pick them by memory: ``shared`` (no zlib state held by a connection between
/// messages) or ``dedicated(compressor:decompressor:level:threshold:)`` with sizes named by what
/// zlib allocates per connection. Server memory per connection for each, measured with 2,000
/// Python `websockets` clients: Benchmarks/RESULTS-pmd-memory.md (`Benchmarks/pmd-memory.sh`).
public struct CompressionSettings: Sendable, Hashable {
    /// Where our deflater lives.
    public enum Memory: Sendable, Hashable {
        /// One deflater per connection, with context takeover unless disabled.
        case dedicated
        /// One deflater per event-loop thread for every connection on it; resets after every
        /// message (we state server_no_context_takeover). Incoming messages are inflated by a
        /// pool of inflaters per thread, borrowed for one message at a time, so we also state
        /// client_no_context_takeover (RFC 7692 §7.1.1.2 lets a server do so unasked).
        case shared
    }

    /// Where our deflater lives. Default `.dedicated`.
    public var memory: Memory
    /// Our LZ77 window, 2^windowBits bytes, 9–15 (never 8: zlib cannot honour it). Default 15.
    public var windowBits: Int
    /// The window we ask the client to use when it allows us to, 9–15. Default 15 (no ask).
    public var peerWindowBits: Int
    /// Reset our deflater after every message. Default `false`.
    public var noContextTakeover: Bool
    /// Ask the client to reset after every message. Default `false`.
    public var peerNoContextTakeover: Bool
    /// zlib level, 0–9. Default 1: fastest at nearly the ratio of 6 on small JSON (measured).
    public var level: Int
    /// Messages shorter than this go out uncompressed. Default 256 bytes.
    public var threshold: Int
    /// zlib memLevel of our deflater, 1–9 (its hash table and block buffer, 2^(memLevel+9) bytes
    /// together), or 0 to follow the window actually agreed: windowBits − 7. Default 0.
    public var memLevel: Int

    /// Creates settings; every parameter has the default given on its property (window 15 both
    /// ways: the most memory, see ``default`` for the recommended mode).
    public init(memory: Memory = .dedicated, windowBits: Int = 15, peerWindowBits: Int = 15,
                noContextTakeover: Bool = false, peerNoContextTakeover: Bool = false,
                level: Int = 1, threshold: Int = 256, memLevel: Int = 0) {
        self.memory = memory
        self.windowBits = windowBits
        self.peerWindowBits = peerWindowBits
        self.noContextTakeover = noContextTakeover
        self.peerNoContextTakeover = peerNoContextTakeover
        self.level = level
        self.threshold = threshold
        self.memLevel = memLevel
    }

    /// The recommended mode, ``dedicated(compressor:decompressor:level:threshold:)`` with its
    /// defaults: compressor ``Compressor/kb38`` and decompressor ``Decompressor/kb11`` (window 12
    /// both ways, as Python `websockets` serves), level 1, threshold 256. Chosen by measurement:
    /// about 50 KiB of zlib state per connection against 301 KiB at window 15 (the initializer's
    /// defaults), for 9–11% more bytes on the wire than window 15 and 3–4% fewer than window 11 on
    /// JSON messages (Benchmarks/pmd_window_ratio.py; memory: Benchmarks/RESULTS-pmd-memory.md).
    public static let `default` = CompressionSettings.dedicated()

    /// Checks the ranges.
    ///
    /// - Throws: ``OptionsError`` naming the field (`compression.windowBits`, …).
    public func validate() throws(OptionsError) {
        if !(9...15).contains(windowBits) { throw OptionsError(field: "compression.windowBits", reason: "must be 9-15") }
        if !(9...15).contains(peerWindowBits) { throw OptionsError(field: "compression.peerWindowBits", reason: "must be 9-15") }
        if !(0...9).contains(level) { throw OptionsError(field: "compression.level", reason: "must be 0-9") }
        if !(0...9).contains(memLevel) { throw OptionsError(field: "compression.memLevel", reason: "must be 0-9") }
        if threshold < 0 { throw OptionsError(field: "compression.threshold", reason: "must not be negative") }
    }
}

/// What the opening handshake agreed for permessage-deflate (RFC 7692 §7.1), and the
/// `Sec-WebSocket-Extensions` value that says so.
package struct CompressionAgreement: Sendable, Equatable {
    var serverMaxWindowBits: UInt8
    var clientMaxWindowBits: UInt8
    var serverNoContextTakeover: Bool
    var clientNoContextTakeover: Bool
    var responseHeader: String

    var params: cws_pmd_params {
        var p = cws_pmd_params()
        p.server_max_window_bits = serverMaxWindowBits
        p.client_max_window_bits = clientMaxWindowBits
        p.server_no_context_takeover = serverNoContextTakeover
        p.client_no_context_takeover = clientNoContextTakeover
        return p
    }

    /// Runs the server's negotiation over the client's offers (every `Sec-WebSocket-Extensions`
    /// line, joined with ","). Nil when no offer is acceptable: the connection goes on without
    /// compression, as RFC 7692 §5 wants, never a failed handshake.
    static func negotiate(offers: [String], settings: CompressionSettings) -> CompressionAgreement? {
        guard !offers.isEmpty else { return nil }
        var cfg = settings.cConfig
        var joined = offers.joined(separator: ",")
        var agreed = cws_pmd_params()
        var out = [UInt8](repeating: 0, count: Int(CWS_PMD_HEADER_MAX))
        var written = 0
        let st = joined.withUTF8 { o in
            out.withUnsafeMutableBytes { r in
                cws_pmd_negotiate(&cfg, o.baseAddress, o.count, &agreed, r.baseAddress, r.count, &written)
            }
        }
        guard st == CWS_OK.rawValue else { return nil }
        return CompressionAgreement(
            serverMaxWindowBits: agreed.server_max_window_bits, clientMaxWindowBits: agreed.client_max_window_bits,
            serverNoContextTakeover: agreed.server_no_context_takeover, clientNoContextTakeover: agreed.client_no_context_takeover,
            responseHeader: String(decoding: out[0..<written], as: UTF8.self))
    }
}

extension CompressionAgreement {
    /// Client role: our one permessage-deflate offer for these settings (RFC 7692 §7.1), e.g.
    /// `permessage-deflate; client_max_window_bits`.
    static func clientOffer(settings: CompressionSettings) -> String {
        var cfg = settings.cConfig
        var out = [UInt8](repeating: 0, count: Int(CWS_PMD_HEADER_MAX))
        var written = 0
        let st = out.withUnsafeMutableBytes { cws_pmd_offer_write(&cfg, $0.baseAddress, $0.count, &written) }
        precondition(st == CWS_OK.rawValue, "offer for validated settings")
        return String(decoding: out[0..<written], as: UTF8.self)
    }

    /// Client role: checks the server's `Sec-WebSocket-Extensions` answer against the offer made
    /// from the same settings. `.declined`: the server accepted no extension; `.refused`:
    /// the answer does not fit the offer (fail the connection), with the engine's reason.
    static func clientAccept(response: String, settings: CompressionSettings) -> ClientAnswer {
        var cfg = settings.cConfig
        var agreed = cws_pmd_params()
        var value = response
        let st = value.withUTF8 { cws_pmd_response_accept(&cfg, $0.baseAddress, $0.count, &agreed) }
        if st == CWS_PMD_DECLINED.rawValue { return .declined }
        guard st == CWS_OK.rawValue else { return .refused(String(cString: cws_strerror(st))) }
        return .agreed(CompressionAgreement(
            serverMaxWindowBits: agreed.server_max_window_bits, clientMaxWindowBits: agreed.client_max_window_bits,
            serverNoContextTakeover: agreed.server_no_context_takeover, clientNoContextTakeover: agreed.client_no_context_takeover,
            responseHeader: response))
    }

    /// What a server's permessage-deflate answer means to the client.
    enum ClientAnswer {
        case agreed(CompressionAgreement)
        case declined
        case refused(String)
    }
}

extension CompressionSettings {
    var cConfig: cws_pmd_config {
        var c = cws_pmd_config()
        cws_pmd_config_init(&c)
        c.window_bits = UInt8(windowBits)
        c.peer_window_bits = UInt8(peerWindowBits)
        c.no_context_takeover = noContextTakeover
        c.peer_no_context_takeover = peerNoContextTakeover || memory == .shared
        c.level = UInt8(level)
        c.mem_level = UInt8(clamping: memLevel)
        c.threshold = UInt32(clamping: threshold)
        c.memory = memory == .shared ? CWS_PMD_MEMORY_SHARED : CWS_PMD_MEMORY_DEDICATED
        return c
    }
}

/// A zlib deflater for outgoing messages (server role). Dedicated: one per connection, created
/// on the first message worth compressing. Shared: one per event-loop thread, reset after every
/// message, used by every connection on that thread.
final class Deflater {
    private let handle: OpaquePointer

    init?(settings: CompressionSettings, agreement: CompressionAgreement?, role: WebSocketRole = .server) {
        var cfg = settings.cConfig
        var d: OpaquePointer?
        let st: Int32
        if let agreement {
            var p = agreement.params
            st = cws_deflater_new(&cfg, &p, role.cRole, nil, &d)
        } else {
            st = cws_deflater_new(&cfg, nil, role.cRole, nil, &d)
        }
        guard st == CWS_OK.rawValue, let d else { return nil }
        handle = d
    }

    deinit { cws_deflater_free(handle) }

    /// The payload to send and whether it is compressed (RSV1). The engine may still send it as it
    /// is (below its threshold, or when a resetting deflater finds no gain); the caller skips the
    /// deflater itself for messages marked uncompressed.
    func compress(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> (ByteBuffer, Bool)? {
        let bound = cws_deflate_bound(payload.readableBytes)
        var out = allocator.buffer(capacity: bound)
        var compressed = false
        var failed = false
        payload.withUnsafeReadableBytes { input in
            _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { o in
                var written = 0
                let st = cws_deflate_message(handle, input.baseAddress, input.count,
                                             UInt32(CWS_DEFLATE_DEFAULT),
                                             o.baseAddress, o.count, &written, &compressed)
                if st != CWS_OK.rawValue { failed = true; return 0 }
                return written
            }
        }
        if failed { return nil }
        return compressed ? (out, true) : (payload, false)
    }

    /// The shared deflater of the calling thread for these settings.
    static func shared(settings: CompressionSettings) -> Deflater? {
        let box = sharedBox.currentValue ?? {
            let b = SharedBox()
            sharedBox.currentValue = b
            return b
        }()
        if let d = box.deflaters[settings] { return d }
        let d = Deflater(settings: settings, agreement: nil)
        box.deflaters[settings] = d
        return d
    }

    private final class SharedBox {
        var deflaters: [CompressionSettings: Deflater] = [:]
    }
    // ThreadSpecificVariable gives each thread its own value; the variable itself is safe to share.
    nonisolated(unsafe) private static let sharedBox = ThreadSpecificVariable<SharedBox>()
}

@available(*, unavailable)
extension Deflater: Sendable {}

/// The inflaters of one thread's connections in shared mode (`cws_inflater_pool`): a connection
/// borrows one only while a compressed message arrives, so it holds no zlib state between
/// messages. Each engine keeps its pool alive; the pool is safe to return to from any thread.
final class InflaterPool {
    let handle: OpaquePointer

    private init?() {
        var p: OpaquePointer?
        guard cws_inflater_pool_new(nil, &p) == CWS_OK.rawValue, let p else { return nil }
        handle = p
    }

    deinit { cws_inflater_pool_free(handle) }

    /// The calling thread's pool, created on first use.
    static var current: InflaterPool? {
        if let p = box.currentValue { return p }
        let p = InflaterPool()
        if let p { box.currentValue = p }
        return p
    }

    // ThreadSpecificVariable gives each thread its own value; the variable itself is safe to share.
    nonisolated(unsafe) private static let box = ThreadSpecificVariable<InflaterPool>()
}

@available(*, unavailable)
extension InflaterPool: Sendable {}
