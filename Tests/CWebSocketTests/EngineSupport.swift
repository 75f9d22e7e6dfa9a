import CWebSocket

/// A Swift copy of one engine event, so it outlives the buffer it pointed into.
struct Event: Equatable, CustomStringConvertible {
    var type: UInt8
    var payload: [UInt8]
    var closeCode: UInt16 = 0
    var rsv: UInt8 = 0

    var description: String {
        "Event(type: \(type), \(payload.count) bytes, code: \(closeCode), rsv: \(rsv))"
    }

    static func text(_ s: String) -> Event { Event(type: UInt8(CWS_EVENT_TEXT.rawValue), payload: Array(s.utf8)) }
    static func binary(_ b: [UInt8]) -> Event { Event(type: UInt8(CWS_EVENT_BINARY.rawValue), payload: b) }
    static func ping(_ b: [UInt8]) -> Event { Event(type: UInt8(CWS_EVENT_PING.rawValue), payload: b) }
    static func pong(_ b: [UInt8]) -> Event { Event(type: UInt8(CWS_EVENT_PONG.rawValue), payload: b) }
    static func close(_ code: UInt16, _ reason: String = "") -> Event {
        Event(type: UInt8(CWS_EVENT_CLOSE.rawValue), payload: Array(reason.utf8), closeCode: code)
    }
}

/// What feeding a byte stream to an engine produced.
struct RunResult {
    var events: [Event] = []
    /// The last status other than CWS_OK / CWS_WANT_READ (0 when none).
    var status: Int32 = 0
    /// The close code of the ERROR event, when there was one.
    var errorCode: UInt16 = 0
    /// How many events pointed into the caller's buffer (zero-copy deliveries).
    var inPlace = 0
    /// Whether the engine answered CWS_CLOSED (input after a close frame).
    var closed = false
    /// Input bytes consumed before the run stopped.
    var consumed = 0
}

func makeConfig(role: cws_role = CWS_ROLE_SERVER, maxMessage: UInt64 = 65536, maxFrame: UInt64 = 65536,
                allowedRSV: UInt8 = 0) -> cws_config {
    var cfg = cws_config()
    cws_config_init(&cfg, role)
    cfg.max_message_size = maxMessage
    cfg.max_frame_size = maxFrame
    cfg.allowed_rsv = allowedRSV
    return cfg
}

/// Feeds `bytes` to a fresh engine in pieces of the given sizes (the rest in one piece), copying each
/// piece into its own array first so in-place unmasking of one piece cannot leak into the next.
func run(_ bytes: [UInt8], config: cws_config = makeConfig(), chunks: [Int] = []) -> RunResult {
    var cfg = config
    var conn: OpaquePointer? = nil
    precondition(cws_conn_new(&cfg, &conn) == CWS_OK.rawValue)
    defer { cws_conn_free(conn) }
    var result = RunResult()
    var start = 0
    var sizes = chunks
    while start < bytes.count || (bytes.isEmpty && start == 0) {
        let n = sizes.isEmpty ? bytes.count - start : min(sizes.removeFirst(), bytes.count - start)
        var piece = Array(bytes[start..<(start + n)])
        start += n
        let stop = piece.withUnsafeMutableBytes { raw -> Bool in
            var off = 0
            while true {
                var used = 0
                var ev = cws_event()
                let st = cws_conn_parse(conn, raw.baseAddress.map { $0 + off }, raw.count - off, &used, &ev)
                off += used
                result.consumed += used
                if st == CWS_OK.rawValue {
                    var payload: [UInt8] = []
                    if ev.length > 0 {
                        payload = Array(UnsafeRawBufferPointer(start: ev.data, count: ev.length))
                    }
                    if ev.in_input == 1 {
                        result.inPlace += 1
                        // The payload must be where `offset` says, inside this call's buffer.
                        precondition(ev.length == 0 || ev.data == UnsafeRawPointer(raw.baseAddress! + off - used + ev.offset))
                    }
                    result.events.append(Event(type: ev.type, payload: payload, closeCode: ev.close_code, rsv: ev.rsv))
                    continue
                }
                if st == CWS_WANT_READ.rawValue { return false }
                if st == CWS_CLOSED.rawValue { result.closed = true; return true }
                result.status = st
                if ev.type == UInt8(CWS_EVENT_ERROR.rawValue) { result.errorCode = ev.close_code }
                return true
            }
        }
        if stop || bytes.isEmpty { break }
    }
    return result
}

/// Builds one frame the way a peer would send it (client frames masked with `key`).
func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0,
           mask: [UInt8]? = [0x37, 0xfa, 0x21, 0x3d]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: Int(CWS_MAX_HEADER_SIZE))
    var written = 0
    let st = out.withUnsafeMutableBytes { o in
        if let mask {
            return mask.withUnsafeBytes { k in
                cws_frame_header_write(o.baseAddress, o.count, &written, fin, rsv, opcode, UInt64(payload.count), k.baseAddress)
            }
        }
        return cws_frame_header_write(o.baseAddress, o.count, &written, fin, rsv, opcode, UInt64(payload.count), nil)
    }
    precondition(st == CWS_OK.rawValue, "frame() with invalid arguments")
    var body = payload
    if let mask {
        mask.withUnsafeBytes { k in
            body.withUnsafeMutableBytes { b in _ = cws_mask_with(CWS_KERNEL_REFERENCE, b.baseAddress, b.count, k.baseAddress, 0) }
        }
    }
    return Array(out[0..<written]) + body
}

/// Builds a frame header by hand (no checks), for frames the writer refuses to produce.
func rawFrame(b0: UInt8, b1: UInt8, extended: [UInt8] = [], mask: [UInt8]? = nil, payload: [UInt8] = []) -> [UInt8] {
    var out = [b0, b1] + extended
    var body = payload
    if let mask {
        out += mask
        for i in body.indices { body[i] ^= mask[i & 3] }
    }
    return out + body
}

/// A small deterministic generator (splitmix64), so failures reproduce.
struct EngineRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension cws_status {
    var code: Int32 { rawValue }
}
