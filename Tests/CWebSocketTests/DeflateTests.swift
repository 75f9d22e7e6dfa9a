import CWebSocket
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Support

/// Counts the bytes held through a cws_allocator: live, peak held (a realloc counted as the
/// change in size) and peak with a moving realloc's old and new blocks both alive. Can fail the
/// n-th allocation.
final class ByteCounter {
    var live = 0
    var peak = 0
    var peakWithCopies = 0
    var allocations = 0
    var failAt = Int.max // index of the allocation that fails (0-based)
    var sizes: [UnsafeMutableRawPointer: Int] = [:]

    func resetPeaks() {
        peak = live
        peakWithCopies = live
    }

    var allocator: cws_allocator {
        var a = cws_allocator()
        a.user = Unmanaged.passUnretained(self).toOpaque()
        a.alloc = { size, user in
            let me = Unmanaged<ByteCounter>.fromOpaque(user!).takeUnretainedValue()
            defer { me.allocations += 1 }
            if me.allocations == me.failAt { return nil }
            let p = malloc(max(size, 1))!
            me.sizes[p] = size
            me.live += size
            me.peak = max(me.peak, me.live)
            me.peakWithCopies = max(me.peakWithCopies, me.live)
            return p
        }
        a.realloc = { ptr, size, user in
            let me = Unmanaged<ByteCounter>.fromOpaque(user!).takeUnretainedValue()
            defer { me.allocations += 1 }
            if me.allocations == me.failAt { return nil }
            let old = ptr.map { me.sizes[$0]! } ?? 0
            me.peakWithCopies = max(me.peakWithCopies, me.live + size)
            if let ptr { me.sizes[ptr] = nil }
            let p = realloc(ptr, max(size, 1))!
            me.sizes[p] = size
            me.live += size - old
            me.peak = max(me.peak, me.live)
            return p
        }
        a.free = { ptr, user in
            guard let ptr else { return }
            let me = Unmanaged<ByteCounter>.fromOpaque(user!).takeUnretainedValue()
            me.live -= me.sizes.removeValue(forKey: ptr)!
            free(ptr)
        }
        return a
    }
}

/// One receiving engine that lives across several feeds (a connection).
final class Session {
    var conn: OpaquePointer?
    var status: Int32 = 0

    init(role: cws_role, pmd: cws_pmd_params?, maxMessage: UInt64 = 65536, maxFrame: UInt64 = 1 << 20,
         allocator: UnsafePointer<cws_allocator>? = nil) {
        var cfg = makeConfig(role: role, maxMessage: maxMessage, maxFrame: maxFrame)
        cfg.allocator = allocator
        if var p = pmd {
            status = withUnsafePointer(to: &p) { pp in
                cfg.pmd = pp
                return cws_conn_new(&cfg, &conn)
            }
        } else {
            status = cws_conn_new(&cfg, &conn)
        }
    }

    deinit { cws_conn_free(conn) }

    /// Feeds bytes in pieces of at most `chunk` bytes; collects events until the engine wants more
    /// or fails.
    func feed(_ bytes: [UInt8], chunk: Int = Int.max) -> RunResult {
        var result = RunResult()
        var start = 0
        repeat {
            let n = min(chunk, bytes.count - start)
            var piece = Array(bytes[start..<(start + n)])
            start += n
            let stop = piece.withUnsafeMutableBytes { raw -> Bool in
                var off = 0
                while true {
                    var used = 0
                    var ev = cws_event()
                    let st = cws_conn_parse(conn, raw.baseAddress.map { $0 + off }, raw.count - off, &used, &ev)
                    precondition(used <= raw.count - off)
                    off += used
                    result.consumed += used
                    if st == CWS_OK.rawValue {
                        let payload = ev.length > 0 ? Array(UnsafeRawBufferPointer(start: ev.data, count: ev.length)) : []
                        if ev.in_input == 1 { result.inPlace += 1 }
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
            if stop { break }
        } while start < bytes.count
        return result
    }
}

/// A cws_deflater owned by Swift.
final class Deflater {
    var d: OpaquePointer?
    let status: Int32

    init(_ cfg: cws_pmd_config, agreed: cws_pmd_params?, role: cws_role = CWS_ROLE_SERVER,
         allocator: UnsafePointer<cws_allocator>? = nil) {
        var c = cfg
        var local: OpaquePointer?
        if var a = agreed {
            status = withUnsafePointer(to: &a) { cws_deflater_new(&c, $0, role, allocator, &local) }
        } else {
            status = cws_deflater_new(&c, nil, role, allocator, &local)
        }
        d = local
    }

    deinit { cws_deflater_free(d) }

    /// (status, compressed, payload). Uncompressed messages come back as they went in.
    func message(_ msg: [UInt8], flags: UInt32 = 0, cap: Int? = nil) -> (Int32, Bool, [UInt8]) {
        var out = [UInt8](repeating: 0xEE, count: cap ?? cws_deflate_bound(msg.count))
        var written = 0
        var compressed = false
        let st = msg.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { o in
                cws_deflate_message(d, m.baseAddress, m.count, flags, o.baseAddress, o.count, &written, &compressed)
            }
        }
        if st != CWS_OK.rawValue { return (st, false, []) }
        return (st, compressed, compressed ? Array(out[0..<written]) : msg)
    }

    /// Compresses (or not) and frames a message: RSV1 on the first frame only, fragments of at most
    /// `fragment` bytes, masked when `mask` is given.
    func frames(_ msg: [UInt8], opcode: UInt8 = 0x1, flags: UInt32 = 0, fragment: Int = Int.max,
                mask: [UInt8]? = nil) -> [UInt8] {
        let (st, compressed, payload) = message(msg, flags: flags)
        precondition(st == CWS_OK.rawValue)
        return frameMessage(payload, opcode: opcode, rsv: compressed ? UInt8(CWS_RSV1) : 0,
                            fragment: fragment, mask: mask)
    }
}

func frameMessage(_ payload: [UInt8], opcode: UInt8, rsv: UInt8, fragment: Int, mask: [UInt8]?) -> [UInt8] {
    var out: [UInt8] = []
    var start = 0
    repeat {
        let n = min(fragment, payload.count - start)
        let first = start == 0
        let fin = start + n == payload.count
        out += frame(first ? opcode : 0x0, Array(payload[start..<(start + n)]), fin: fin, rsv: first ? rsv : 0, mask: mask)
        start += n
    } while start < payload.count
    return out
}

func pmdConfig(window: UInt8 = 15, level: UInt8 = 1, memLevel: UInt8 = 0, threshold: UInt32 = 0, nct: Bool = false,
               shared: Bool = false) -> cws_pmd_config {
    var c = cws_pmd_config()
    cws_pmd_config_init(&c)
    c.window_bits = window
    c.level = level
    c.mem_level = memLevel
    c.threshold = threshold
    c.no_context_takeover = nct
    c.memory = shared ? CWS_PMD_MEMORY_SHARED : CWS_PMD_MEMORY_DEDICATED
    return c
}

func params(s: UInt8 = 15, c: UInt8 = 15, snct: Bool = false, cnct: Bool = false) -> cws_pmd_params {
    cws_pmd_params(server_max_window_bits: s, client_max_window_bits: c, server_no_context_takeover: snct,
                   client_no_context_takeover: cnct)
}

/// Text that looks like what chat and RPC applications send: JSON objects with repeated keys,
/// numbers, and some non-ASCII text.
func jsonLike(_ rng: inout EngineRNG, size: Int) -> [UInt8] {
    let names = ["alice", "bob", "Zoë", "Ünal", "李雷", "🚀 rocket", "carol"]
    let words = ["hello", "world", "message", "typing", "presence", "room", "général", "ok", "ready"]
    var s = "["
    var id = Int(rng.next() % 100_000)
    while s.utf8.count < size {
        id += Int(rng.next() % 7) + 1
        let text = (0..<Int(rng.next() % 8 + 1)).map { _ in words[Int(rng.next() % UInt64(words.count))] }.joined(separator: " ")
        s += "{\"id\":\(id),\"user\":\"\(names[Int(rng.next() % UInt64(names.count))])\",\"type\":\"chat\",\"text\":\"\(text)\",\"ts\":\(1_700_000_000 + id)},"
    }
    var bytes = Array(s.utf8)
    // Cut to the size without splitting a UTF-8 sequence.
    var n = min(size, bytes.count)
    while n > 0 && n < bytes.count && (bytes[n] & 0xC0) == 0x80 { n -= 1 }
    bytes.removeSubrange(n...)
    return bytes
}

/// Random printable text with multi-byte characters (compresses a little).
func randomText(_ rng: inout EngineRNG, size: Int) -> [UInt8] {
    let pieces: [String] = ["a", "b", "c", " ", "e", "é", "ß", "€", "中", "😀", "\n", "{", "}", "0", "9"]
    var out: [UInt8] = []
    while out.count < size {
        let p = Array(pieces[Int(rng.next() % UInt64(pieces.count))].utf8)
        if out.count + p.count > size { break }
        out += p
    }
    return out
}

func randomBytes(_ rng: inout EngineRNG, size: Int) -> [UInt8] {
    (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

let rsv1 = UInt8(CWS_RSV1)

// MARK: - Tests

/// permessage-deflate: compression and decompression (RFC 7692 §6, §7.2) through the deflater and
/// the engine, RFC examples byte for byte, every mode, limits and memory.
@Suite struct DeflateTests {
    // MARK: RFC 7692 §7.2.3 examples

    static let helloCompressed: [UInt8] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    static let hello = Array("Hello".utf8)

    /// §7.2.3.1: "Hello" as one compressed block.
    @Test func rfcHelloCompressed() {
        let d = Deflater(pmdConfig(), agreed: params())
        #expect(d.message(Self.hello) == (CWS_OK.rawValue, true, Self.helloCompressed))
        // The same through every level and window: a 5-byte text always gets this fixed-Huffman block.
        for level: UInt8 in 1...9 {
            for window: UInt8 in 9...15 {
                #expect(Deflater(pmdConfig(window: window, level: level), agreed: params()).message(Self.hello).2 == Self.helloCompressed)
            }
        }
        // Received (client role, unmasked): 0xc1 = FIN + RSV1 + text.
        let s = Session(role: CWS_ROLE_CLIENT, pmd: params())
        let r = s.feed([0xc1, 0x07] + Self.helloCompressed)
        #expect(r.status == 0)
        #expect(r.events == [Event(type: 1, payload: Self.hello, rsv: rsv1)])
        #expect(r.inPlace == 0)
    }

    /// §7.2.3.2: the same message again reuses the window (context takeover); without it, the
    /// same 7 bytes again.
    @Test func rfcSharingTheSlidingWindow() {
        let d = Deflater(pmdConfig(), agreed: params())
        #expect(d.message(Self.hello).2 == Self.helloCompressed)
        #expect(d.message(Self.hello).2 == [0xf2, 0x00, 0x11, 0x00, 0x00])
        // No context takeover, agreed or configured, or shared: every message from a fresh window.
        let noTakeover = [Deflater(pmdConfig(), agreed: params(snct: true)), Deflater(pmdConfig(nct: true), agreed: params()),
                          Deflater(pmdConfig(shared: true), agreed: nil),
                          Deflater(pmdConfig(), agreed: params(cnct: true), role: CWS_ROLE_CLIENT)]
        let repeated = Array("Hello, Hello, Hello, Hello!".utf8)
        let takeover = Deflater(pmdConfig(), agreed: params())
        let firstTime = takeover.message(repeated).2
        #expect(takeover.message(repeated).2.count < firstTime.count)
        for d in noTakeover {
            // "Hello" compresses to 7 bytes, more than its 5: a deflater that resets anyway sends
            // it as it is.
            #expect(d.message(Self.hello) == (CWS_OK.rawValue, false, Self.hello))
            // A message that does shrink compresses the same every time: nothing carried over.
            #expect(d.message(repeated) == (CWS_OK.rawValue, true, firstTime))
            #expect(d.message(repeated) == (CWS_OK.rawValue, true, firstTime))
        }
        // The server's takeover setting does not touch a client's deflater, and the reverse.
        let client = Deflater(pmdConfig(), agreed: params(snct: true), role: CWS_ROLE_CLIENT)
        _ = client.message(Self.hello)
        #expect(client.message(Self.hello).2 == [0xf2, 0x00, 0x11, 0x00, 0x00])
        // The receiver keeps the window across messages.
        let s = Session(role: CWS_ROLE_CLIENT, pmd: params())
        let r = s.feed([0xc1, 0x07] + Self.helloCompressed + [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00])
        #expect(r.events == [Event(type: 1, payload: Self.hello, rsv: rsv1), Event(type: 1, payload: Self.hello, rsv: rsv1)])
        // With server_no_context_takeover agreed, the inflater starts each message afresh, so a
        // reference into the previous message is too far back: invalid data, 1007.
        let fresh = Session(role: CWS_ROLE_CLIENT, pmd: params(snct: true))
        let bad = fresh.feed([0xc1, 0x07] + Self.helloCompressed + [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00])
        #expect(bad.events.count == 1)
        #expect(bad.status == CWS_ERR_INFLATE.rawValue)
        #expect(bad.errorCode == 1007)
    }

    /// §7.2.3.3: a DEFLATE block with no compression (level 0).
    @Test func rfcStoredBlock() {
        let stored: [UInt8] = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]
        #expect(Deflater(pmdConfig(level: 0), agreed: params()).message(Self.hello).2 == stored)
        let r = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed([0xc1, 0x0b] + stored)
        #expect(r.events == [Event(type: 1, payload: Self.hello, rsv: rsv1)])
    }

    /// §7.2.3.1: the compressed "Hello" split into two fragments, RSV1 on the first only.
    @Test func rfcTwoFragments() {
        let wire: [UInt8] = [0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]
        // The writer side: the deflater's payload split 3 + 4 as in the RFC gives exactly these bytes.
        let (_, compressed, payload) = Deflater(pmdConfig(), agreed: params()).message(Self.hello)
        #expect(compressed)
        #expect(frame(0x1, Array(payload[0..<3]), fin: false, rsv: rsv1, mask: nil) +
                frame(0x0, Array(payload[3...]), fin: true, mask: nil) == wire)
        // The fragmenter puts RSV1 on the first of its 4 + 3 frames only.
        var f = cws_fragmenter()
        #expect(cws_fragmenter_init(&f, 0x1, rsv1, UInt64(payload.count), 4) == CWS_OK.rawValue)
        var out: [UInt8] = []
        var at = 0
        while true {
            var hdr = [UInt8](repeating: 0, count: 14)
            var written = 0
            var n: UInt64 = 0
            let st = hdr.withUnsafeMutableBytes { cws_fragmenter_next(&f, $0.baseAddress, 14, &written, &n, nil) }
            if st == CWS_DONE.rawValue { break }
            #expect(st == CWS_OK.rawValue)
            out += hdr[0..<written] + payload[at..<(at + Int(n))]
            at += Int(n)
        }
        #expect(out == [0x41, 0x04, 0xf2, 0x48, 0xcd, 0xc9, 0x80, 0x03, 0xc9, 0x07, 0x00])
        #expect(Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(out).events == [Event(type: 1, payload: Self.hello, rsv: rsv1)])
        // The reader side, fed whole and at every split point.
        for chunk in 1...wire.count {
            let r = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(wire, chunk: chunk)
            #expect(r.events == [Event(type: 1, payload: Self.hello, rsv: rsv1)], "chunk \(chunk)")
        }
    }

    /// §7.2.3.4 (a block with BFINAL set, then the byte the RFC appends) and §7.2.3.5 (two blocks in
    /// one message). After BFINAL the window is kept, so a following message can refer into it.
    @Test func rfcFinalBlockAndTwoBlocks() {
        let bfinal: [UInt8] = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]
        let twoBlocks: [UInt8] = [0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00]
        let again: [UInt8] = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]
        let stream = bfinal + again + twoBlocks + again
        for chunk in [1, 2, 3, 5, 7, stream.count] {
            let r = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(stream, chunk: chunk)
            #expect(r.status == 0, "chunk \(chunk)")
            #expect(r.events == Array(repeating: Event(type: 1, payload: Self.hello, rsv: rsv1), count: 4), "chunk \(chunk)")
        }
    }

    /// A client's masked compressed frames, received by a server (the masking key runs across the
    /// compressed bytes, RFC 7692 §6).
    @Test func maskedCompressedFrames() {
        var rng = EngineRNG(seed: 11)
        let d = Deflater(pmdConfig(), agreed: params(), role: CWS_ROLE_CLIENT)
        var wire: [UInt8] = []
        var msgs: [[UInt8]] = []
        for i in 0..<30 {
            let m = jsonLike(&rng, size: 50 + i * 97)
            msgs.append(m)
            wire += d.frames(m, fragment: i % 3 == 0 ? 17 : Int.max, mask: [UInt8(i), 0x9a, 0x33, 0xe1])
        }
        for chunk in [1, 7, 64, 1000, wire.count] {
            let r = Session(role: CWS_ROLE_SERVER, pmd: params()).feed(wire, chunk: chunk)
            #expect(r.status == 0)
            #expect(r.events.map(\.payload) == msgs, "chunk \(chunk)")
            #expect(r.events.allSatisfy { $0.rsv == rsv1 && $0.type == 1 })
        }
    }

    // MARK: Round trips

    /// Random and real-world-like text through every window size, context takeover on and off,
    /// dedicated and shared, several levels; fragmented at random sizes, fed in random chunks.
    @Test func roundTripsInEveryMode() {
        var rng = EngineRNG(seed: 42)
        var modes: [(cws_pmd_config, cws_pmd_params?, cws_pmd_params)] = [] // deflater cfg, its agreement, the receiver's
        for window: UInt8 in 9...15 {
            for nct in [false, true] {
                let p = params(s: window, snct: nct)
                modes.append((pmdConfig(window: 15, level: [0, 1, 6, 9][Int(window) % 4]), p, p))
            }
            // Shared deflater with this window (resets after each message), receiver told so.
            modes.append((pmdConfig(window: window, shared: true), nil, params(s: window, snct: true)))
        }
        // memLevel extremes.
        modes.append((pmdConfig(memLevel: 1), params(), params()))
        modes.append((pmdConfig(memLevel: 9), params(), params()))
        for (cfg, agreed, receiver) in modes {
            let d = Deflater(cfg, agreed: agreed)
            #expect(d.status == CWS_OK.rawValue)
            var msgs: [[UInt8]] = []
            var wire: [UInt8] = []
            for i in 0..<12 {
                let size = [0, 1, 100, 255, 256, 700, 2048, 5000, 20000, 65536][i % 10] + Int(rng.next() % 3)
                let m: [UInt8]
                switch i % 3 {
                case 0: m = jsonLike(&rng, size: size)
                case 1: m = randomText(&rng, size: size)
                default: m = randomBytes(&rng, size: size)
                }
                let size2 = min(m.count, 65536)
                let msg = Array(m[0..<size2])
                msgs.append(msg)
                let fragment = [Int.max, 1000, 33][Int(rng.next() % 3)]
                wire += d.frames(msg, opcode: i % 3 == 2 ? 0x2 : 0x1, fragment: fragment)
            }
            var chunks: [Int] = []
            var total = 0
            while total < wire.count {
                let c = Int(rng.next() % 3000) + 1
                chunks.append(c)
                total += c
            }
            let s = Session(role: CWS_ROLE_CLIENT, pmd: receiver)
            var r = RunResult()
            var at = 0
            for c in chunks {
                let n = min(c, wire.count - at)
                let part = s.feed(Array(wire[at..<(at + n)]))
                r.events += part.events
                r.status = part.status
                at += n
                if part.status != 0 { break }
            }
            #expect(r.status == 0, "window \(cfg.window_bits) shared \(agreed == nil)")
            #expect(r.events.map(\.payload) == msgs, "window \(cfg.window_bits) shared \(agreed == nil)")
        }
    }

    /// Both directions at once: a server deflater to a client engine and the reverse, with the
    /// parameters that negotiation produced.
    @Test func negotiatedEndToEnd() {
        var rng = EngineRNG(seed: 5)
        var server = pmdConfig(window: 11, threshold: 64)
        server.peer_window_bits = 10
        var client = pmdConfig(window: 12, threshold: 64)
        client.peer_no_context_takeover = true
        var offer = [UInt8](repeating: 0, count: Int(CWS_PMD_HEADER_MAX))
        var n = 0
        #expect(offer.withUnsafeMutableBytes { cws_pmd_offer_write(&client, $0.baseAddress, $0.count, &n) } == CWS_OK.rawValue)
        var agreedS = cws_pmd_params()
        var response = [UInt8](repeating: 0, count: Int(CWS_PMD_HEADER_MAX))
        var rn = 0
        let st = response.withUnsafeMutableBytes { r in
            offer.withUnsafeBytes { o in cws_pmd_negotiate(&server, o.baseAddress, n, &agreedS, r.baseAddress, r.count, &rn) }
        }
        #expect(st == CWS_OK.rawValue)
        #expect(String(decoding: response[0..<rn], as: UTF8.self) ==
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10")
        var agreedC = cws_pmd_params()
        #expect(response.withUnsafeBytes { cws_pmd_response_accept(&client, $0.baseAddress, rn, &agreedC) } == CWS_OK.rawValue)
        let down = Deflater(server, agreed: agreedS, role: CWS_ROLE_SERVER)
        let up = Deflater(client, agreed: agreedC, role: CWS_ROLE_CLIENT)
        let clientEngine = Session(role: CWS_ROLE_CLIENT, pmd: agreedC)
        let serverEngine = Session(role: CWS_ROLE_SERVER, pmd: agreedS)
        for i in 0..<40 {
            let m = jsonLike(&rng, size: 20 + i * 50)
            #expect(clientEngine.feed(down.frames(m)).events.map(\.payload) == [m])
            #expect(serverEngine.feed(up.frames(m, mask: [1, 2, 3, UInt8(i)])).events.map(\.payload) == [m])
        }
    }

    // MARK: Per-message decision

    @Test func thresholdAndNoCompressFlag() {
        var rng = EngineRNG(seed: 3)
        let d = Deflater(pmdConfig(threshold: 256), agreed: params())
        let below = jsonLike(&rng, size: 255)
        let at = jsonLike(&rng, size: 256)
        #expect(below.count == 255 && at.count == 256)
        let (st1, c1, p1) = d.message(below)
        #expect(st1 == CWS_OK.rawValue && !c1 && p1 == below)
        let (_, c2, p2) = d.message(at)
        #expect(c2 && p2.count < at.count)
        let (_, c3, p3) = d.message(at, flags: UInt32(CWS_DEFLATE_NO_COMPRESS))
        #expect(!c3 && p3 == at)
        // An uncompressed message takes no output buffer at all.
        var written = 99
        var compressed = true
        let st = below.withUnsafeBytes { cws_deflate_message(d.d, $0.baseAddress, $0.count, 0, nil, 0, &written, &compressed) }
        #expect(st == CWS_OK.rawValue && written == 0 && !compressed)
        // Unknown flags are refused.
        #expect(d.message(at, flags: 2).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
    }

    /// The decision comes before the data touches the deflater: an uncompressed message in between
    /// leaves the window exactly as if it had never been sent.
    @Test func uncompressedMessagesNeverEnterTheWindow() {
        var rng = EngineRNG(seed: 8)
        let a = jsonLike(&rng, size: 600)
        let b = jsonLike(&rng, size: 600)
        let small = Array("tiny".utf8)
        let d1 = Deflater(pmdConfig(threshold: 100), agreed: params())
        let d2 = Deflater(pmdConfig(threshold: 100), agreed: params())
        _ = d1.message(a)
        _ = d2.message(a)
        #expect(!d1.message(b, flags: UInt32(CWS_DEFLATE_NO_COMPRESS)).1)
        #expect(!d1.message(small).1)
        #expect(d1.message(b).2 == d2.message(b).2)
    }

    /// Interleaved compressed and uncompressed messages with context takeover, received in one
    /// stream: the uncompressed ones go through the zero-copy path, the others through the window.
    @Test func interleavedWithContextTakeover() {
        var rng = EngineRNG(seed: 9)
        let d = Deflater(pmdConfig(threshold: 200), agreed: params())
        var wire: [UInt8] = []
        var want: [Event] = []
        var inPlace = 0
        for i in 0..<60 {
            let m = jsonLike(&rng, size: [50, 300, 199, 200, 1500][i % 5])
            let flags: UInt32 = i % 7 == 3 ? UInt32(CWS_DEFLATE_NO_COMPRESS) : 0
            let (_, compressed, payload) = d.message(m, flags: flags)
            #expect(compressed == (m.count >= 200 && flags == 0))
            let fragment = i % 4 == 0 ? 100 : Int.max
            wire += frameMessage(payload, opcode: 0x1, rsv: compressed ? rsv1 : 0, fragment: fragment, mask: nil)
            want.append(Event(type: 1, payload: m, rsv: compressed ? rsv1 : 0))
            // Uncompressed and in one frame: delivered in place, no copy.
            if !compressed && payload.count <= fragment { inPlace += 1 }
            // A ping between messages (in place too).
            if i % 5 == 0 { wire += frame(0x9, [UInt8(i)], mask: nil); want.append(.ping([UInt8(i)])); inPlace += 1 }
        }
        let r = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(wire)
        #expect(r.status == 0)
        #expect(r.events == want)
        #expect(r.inPlace == inPlace)
    }

    /// With no context takeover, output that would not be smaller is sent as it is.
    @Test func incompressibleMessagesGoOutUncompressedWhenTheWindowResets() {
        var rng = EngineRNG(seed: 10)
        let noise = randomBytes(&rng, size: 3000)
        let reset = Deflater(pmdConfig(nct: true), agreed: params())
        #expect(reset.message(noise) == (CWS_OK.rawValue, false, noise))
        // With context takeover the data is in the window already, so it must go out compressed.
        let takeover = Deflater(pmdConfig(), agreed: params())
        let (_, c, p) = takeover.message(noise)
        #expect(c && p.count >= noise.count)
        #expect(p.count <= cws_deflate_bound(noise.count))
    }

    @Test func emptyMessages() {
        let d = Deflater(pmdConfig(threshold: 0), agreed: params())
        #expect(d.message([]) == (CWS_OK.rawValue, true, [0x00]))
        #expect(d.message([]) == (CWS_OK.rawValue, true, [0x00])) // twice in a row (zlib alone would refuse)
        let m = d.message(Self.hello)
        #expect(m.2 == Self.helloCompressed)
        // Received: the 0x00 payload and an RSV1 frame with no payload at all are both empty
        // messages, and neither disturbs the window.
        let s = Session(role: CWS_ROLE_CLIENT, pmd: params())
        let r = s.feed([0xc1, 0x01, 0x00, 0xc1, 0x00] + [0xc1, 0x07] + Self.helloCompressed + [0xc1, 0x00, 0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00])
        #expect(r.status == 0)
        #expect(r.events.map(\.payload) == [[], [], Self.hello, [], Self.hello])
    }

    @Test func outputBufferContract() {
        #expect(cws_deflate_bound(0) == 16)
        #expect(cws_deflate_bound(1000) == 1000 + 125 + 15 + 16)
        // size_t comes into Swift as Int: compare bit patterns.
        #expect(cws_deflate_bound(-1) == -1)              // SIZE_MAX: would overflow, saturates
        #expect(UInt(bitPattern: cws_deflate_bound(Int.max)) == UInt(Int.max) + UInt(Int.max) / 8 + UInt(Int.max) / 64 + 16)
        var rng = EngineRNG(seed: 12)
        let m = jsonLike(&rng, size: 1000)
        let d = Deflater(pmdConfig(), agreed: params())
        let ref = Deflater(pmdConfig(), agreed: params())
        _ = d.message(m)
        _ = ref.message(m)
        // Too small a buffer is refused before compressing: the window is unchanged.
        #expect(d.message(m, cap: cws_deflate_bound(m.count) - 1).0 == CWS_ERR_BUFFER_TOO_SMALL.rawValue)
        #expect(d.message(m).2 == ref.message(m).2)
        // Worst cases stay within the bound: random bytes at every level and memLevel 1.
        for level: UInt8 in 0...9 {
            for size in [1, 100, 4000, 70000] {
                let noise = randomBytes(&rng, size: size)
                let w = Deflater(pmdConfig(window: 9, level: level, memLevel: 1), agreed: params())
                let (st, _, p) = w.message(noise, cap: cws_deflate_bound(size))
                #expect(st == CWS_OK.rawValue && p.count <= cws_deflate_bound(size))
            }
        }
    }

    // MARK: Rejections

    @Test func rsv1Rules() {
        let compressedHello = [0xc1, 0x07] + Self.helloCompressed
        // Without the extension: RSV1 is a reserved bit (1002).
        let none = Session(role: CWS_ROLE_CLIENT, pmd: nil).feed(compressedHello)
        #expect(none.status == CWS_ERR_RESERVED_BITS.rawValue && none.errorCode == 1002)
        // RSV1 on a continuation frame (python-websockets #1720, jetty #3159).
        let cont = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed([0x41, 0x03, 0xf2, 0x48, 0xcd, 0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00])
        #expect(cont.status == CWS_ERR_RESERVED_BITS.rawValue && cont.errorCode == 1002)
        let cont2 = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed([0x01, 0x02, 0x48, 0x65, 0xc0, 0x03, 0x6c, 0x6c, 0x6f])
        #expect(cont2.status == CWS_ERR_RESERVED_BITS.rawValue)
        // RSV1 on control frames (RFC 7692 §6.1: data frames only).
        for op: UInt8 in [0x8, 0x9, 0xA] {
            let ctl = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed([0xC0 | op, 0x00])
            #expect(ctl.status == CWS_ERR_RESERVED_BITS.rawValue && ctl.errorCode == 1002, "opcode \(op)")
        }
        // RSV2 / RSV3 stay reserved.
        for b0: UInt8 in [0xa1, 0x91, 0xe1] {
            let r = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed([b0, 0x07] + Self.helloCompressed)
            #expect(r.status == CWS_ERR_RESERVED_BITS.rawValue, "b0 \(b0)")
        }
        // RSV1 with a binary message is fine.
        let bin = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed([0xc2, 0x07] + Self.helloCompressed)
        #expect(bin.events == [Event(type: 2, payload: Self.hello, rsv: rsv1)])
    }

    @Test func corruptAndIncompleteDataIs1007() {
        let cases: [[UInt8]] = [
            [0xff, 0xff, 0xff],                   // BTYPE 11 (reserved)
            [0x00, 0x05, 0x00, 0x00, 0x00],      // stored block with NLEN != ~LEN
            [0xf2, 0x48],                         // a block cut short: after the tail, not at a boundary
            [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07], // one byte missing
            [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], // BFINAL without the byte the RFC appends
        ]
        for payload in cases {
            let r = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(frame(0x1, payload, rsv: rsv1, mask: nil))
            #expect(r.status == CWS_ERR_INFLATE.rawValue, "\(payload)")
            #expect(r.errorCode == 1007)
        }
        // The error is latched like the others.
        let s = Session(role: CWS_ROLE_CLIENT, pmd: params())
        _ = s.feed(frame(0x1, [0xff, 0xff], rsv: rsv1, mask: nil))
        #expect(s.feed(frame(0x1, Self.hello, mask: nil)).status == CWS_ERR_INFLATE.rawValue)
        // The status has a name and a close code in the engine's ERROR event.
        var ev = cws_event()
        var used = 0
        var bytes = frame(0x1, [0xff, 0xff], rsv: rsv1, mask: nil)
        let fresh = Session(role: CWS_ROLE_CLIENT, pmd: params())
        let st = bytes.withUnsafeMutableBytes { cws_conn_parse(fresh.conn, $0.baseAddress, $0.count, &used, &ev) }
        #expect(st == CWS_ERR_INFLATE.rawValue)
        #expect(String(decoding: UnsafeRawBufferPointer(start: ev.data, count: ev.length), as: UTF8.self) == "invalid compressed data")
    }

    @Test func inflatedTextIsValidatedFailFast() {
        // Invalid UTF-8 inside compressed text: 1007.
        let d = Deflater(pmdConfig(), agreed: params())
        let bad: [UInt8] = Array("valid start ".utf8) + [0xC0, 0x80] + Array(" rest".utf8)
        let r = Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(d.frames(bad))
        #expect(r.status == CWS_ERR_INVALID_UTF8.rawValue && r.errorCode == 1007)
        // The same bytes as binary are fine.
        let d2 = Deflater(pmdConfig(), agreed: params())
        #expect(Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(d2.frames(bad, opcode: 0x2)).events.map(\.payload) == [bad])
        // A character cut by the end of the message: 1007 at the end.
        let cut = Deflater(pmdConfig(), agreed: params()).frames(Array("abc€".utf8).dropLast())
        #expect(Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(cut).status == CWS_ERR_INVALID_UTF8.rawValue)
        // A character split across fragments and across inflate chunks is fine.
        var rng = EngineRNG(seed: 4)
        let text = randomText(&rng, size: 40_000)
        let ok = Deflater(pmdConfig(level: 0), agreed: params()).frames(text, fragment: 7)
        #expect(Session(role: CWS_ROLE_CLIENT, pmd: params()).feed(ok, chunk: 5).events.map(\.payload) == [text])
        // Fail fast: the bad byte in the first fragment stops the parse there, before the rest of a
        // long message arrives.
        let early: [UInt8] = [0xFF] + Array(repeating: UInt8(ascii: "a"), count: 20_000)
        // (Level 0: a stored block, so the first fragment's bytes inflate to output at once.)
        let e = Deflater(pmdConfig(level: 0), agreed: params()).frames(early, fragment: 10)
        let s = Session(role: CWS_ROLE_CLIENT, pmd: params())
        let res = s.feed(Array(e.prefix(12))) // the first 10-byte fragment and its header
        #expect(res.status == CWS_ERR_INVALID_UTF8.rawValue)
    }

    // MARK: Limits and memory

    /// A decompression bomb: 10 MB of zeros in a few KB against a 64 KiB limit. 1009, and the memory
    /// held never passes the limit plus zlib's fixed state.
    @Test func decompressionBomb() {
        let zeros = [UInt8](repeating: 0, count: 10_000_000)
        let d = Deflater(pmdConfig(level: 9), agreed: params())
        let (_, compressed, bomb) = d.message(zeros)
        #expect(compressed)
        #expect(bomb.count < 20_000)
        let limit: UInt64 = 65536
        for fragment in [Int.max, 1000] {
            for opcode: UInt8 in [0x1, 0x2] {
                let counter = ByteCounter()
                var alloc = counter.allocator
                withUnsafePointer(to: &alloc) { a in
                    let s = Session(role: CWS_ROLE_CLIENT, pmd: params(), maxMessage: limit, allocator: a)
                    // One small compressed message first, so the lazy inflater and its window exist:
                    // `baseline` is the engine plus zlib's state plus a small reassembly buffer.
                    let warm = Deflater(pmdConfig(), agreed: params())
                    #expect(s.feed(warm.frames(Self.hello)).events.count == 1)
                    let baseline = counter.live
                    counter.resetPeaks()
                    let r = s.feed(frameMessage(bomb, opcode: opcode, rsv: rsv1, fragment: fragment, mask: nil), chunk: 4096)
                    #expect(r.status == CWS_ERR_MESSAGE_TOO_BIG.rawValue)
                    #expect(r.errorCode == 1009)
                    #expect(counter.peak <= baseline + Int(limit), "peak \(counter.peak) baseline \(baseline)")
                    // Even counting a moving realloc's two blocks, at most half the limit more.
                    #expect(counter.peakWithCopies <= baseline + Int(limit) + Int(limit) / 2)
                    if fragment == Int.max && opcode == 0x2 {
                        print("decompressionBomb: bomb \(bomb.count) B -> 10 MB; baseline \(baseline) B (engine + zlib + 1 KiB buffer); peak \(counter.peak) B held, \(counter.peakWithCopies) B with realloc copies; limit \(limit)")
                    }
                }
                #expect(counter.live == 0)
            }
        }
    }

    /// The limit is on the inflated size: exactly max_message passes, one byte more is 1009, and the
    /// compressed size may exceed the limit a little (incompressible data).
    @Test func inflatedSizeLimit() {
        var rng = EngineRNG(seed: 13)
        let limit = 10_000
        let text = jsonLike(&rng, size: limit + 1)
        for size in [limit, limit + 1] {
            let m = Array(text[0..<size])
            let wire = Deflater(pmdConfig(), agreed: params()).frames(m, opcode: 0x2, fragment: 333)
            for chunk in [1, 100, wire.count] {
                let r = Session(role: CWS_ROLE_CLIENT, pmd: params(), maxMessage: UInt64(limit)).feed(wire, chunk: chunk)
                if size == limit {
                    #expect(r.events.map(\.payload) == [m], "chunk \(chunk)")
                } else {
                    #expect(r.status == CWS_ERR_MESSAGE_TOO_BIG.rawValue, "chunk \(chunk)")
                }
            }
        }
        // Random bytes of exactly the limit: the compressed form is larger than the limit, and
        // still accepted.
        let noise = randomBytes(&rng, size: limit)
        let wire = Deflater(pmdConfig(memLevel: 1), agreed: params()).frames(noise, opcode: 0x2)
        #expect(wire.count > limit + 4)
        #expect(Session(role: CWS_ROLE_CLIENT, pmd: params(), maxMessage: UInt64(limit)).feed(wire).events.map(\.payload) == [noise])
        // Compressed bytes beyond max + max/8 + 64 = 11314 are refused on the header.
        let fits = rawFrame(b0: 0xc2, b1: 126, extended: [0x2c, 0x32]) // 11314: waits for the data
        #expect(Session(role: CWS_ROLE_CLIENT, pmd: params(), maxMessage: UInt64(limit)).feed(fits).status == 0)
        let over = rawFrame(b0: 0xc2, b1: 126, extended: [0x2c, 0x33]) // 11315
        #expect(Session(role: CWS_ROLE_CLIENT, pmd: params(), maxMessage: UInt64(limit)).feed(over).status == CWS_ERR_MESSAGE_TOO_BIG.rawValue)
    }

    /// The inflater is created on the first compressed message only; a deflater's zlib state on
    /// the first message it compresses. Everything is freed.
    @Test func lazyStateAndAllocatorRouting() {
        let counter = ByteCounter()
        var alloc = counter.allocator
        withUnsafePointer(to: &alloc) { a in
            let s = Session(role: CWS_ROLE_CLIENT, pmd: params(), allocator: a)
            #expect(counter.allocations == 1) // the engine
            var wire: [UInt8] = []
            for i in 0..<50 { wire += frame(0x1, Array("plain \(i)".utf8), mask: nil) }
            #expect(s.feed(wire).events.count == 50)
            #expect(counter.allocations == 1) // uncompressed messages: nothing more
            let engineOnly = counter.live
            #expect(s.feed([0xc1, 0x07] + Self.helloCompressed).events.count == 1)
            let inflaterBytes = counter.live - engineOnly
            // zlib's inflate state (~7 KB) + a 32 KiB window + the 1 KiB reassembly buffer.
            #expect(inflaterBytes > 32768 && inflaterBytes < 32768 + 16384, "\(inflaterBytes)")
            // A small window costs less: the inflater's window follows the agreed peer window.
            let small = Session(role: CWS_ROLE_CLIENT, pmd: params(s: 9), allocator: a)
            let before = counter.live
            #expect(small.feed([0xc1, 0x07] + Self.helloCompressed).events.count == 1)
            #expect(counter.live - before < inflaterBytes - 30000)

            let d = Deflater(pmdConfig(threshold: 100), agreed: params(), allocator: a)
            let handle = counter.live
            #expect(!d.message(Self.hello).1)
            #expect(counter.live == handle) // below threshold: no zlib state
            #expect(d.message([UInt8](repeating: 65, count: 500)).1)
            #expect(counter.live - handle > 200_000) // window 15 / memLevel 8: zlib's ~256 KB
        }
        #expect(counter.live == 0)
    }

    /// A large inflated message grows the reassembly buffer in a few steps and gives it back once
    /// delivered: an idle connection holds no large message's memory (the engine keeps 4 KiB of
    /// reassembly capacity between messages; it kept 64 KiB before, which a server with mixed
    /// messages held for every connection). 64 KiB messages: memory back to the same level after
    /// each, a bounded number of allocations each.
    @Test func largeMessagesGiveTheBufferBack() {
        var rng = EngineRNG(seed: 15)
        let counter = ByteCounter()
        var alloc = counter.allocator
        withUnsafePointer(to: &alloc) { a in
            let s = Session(role: CWS_ROLE_CLIENT, pmd: params(), maxMessage: 1 << 20, allocator: a)
            let d = Deflater(pmdConfig(), agreed: params())
            let first = jsonLike(&rng, size: 65536)
            #expect(s.feed(d.frames(first, opcode: 0x2)).events.map(\.payload) == [first])
            let allocations = counter.allocations
            let live = counter.live
            counter.resetPeaks()
            for _ in 0..<5 {
                let m = jsonLike(&rng, size: 65536)
                #expect(s.feed(d.frames(m, opcode: 0x2)).events.map(\.payload) == [m])
                #expect(counter.live == live) // given back
            }
            #expect(counter.allocations - allocations <= 5 * 8, "\(counter.allocations - allocations)")
            #expect(counter.peak - live < 2 * 65536, "\(counter.peak - live)") // never far past the message
        }
        // Small messages that nearly fill a small buffer make it grow once (so zlib's fast loop,
        // which wants 258 bytes of room, runs to the end), and then never again.
        let small = ByteCounter()
        var alloc2 = small.allocator
        withUnsafePointer(to: &alloc2) { a in
            let s = Session(role: CWS_ROLE_CLIENT, pmd: params(), allocator: a)
            let d = Deflater(pmdConfig(threshold: 0), agreed: params())
            let first = jsonLike(&rng, size: 1000)
            #expect(s.feed(d.frames(first)).events.map(\.payload) == [first])
            let allocations = small.allocations
            let live = small.live
            for size in [1000, 1024, 900, 1010, 1024] {
                let m = jsonLike(&rng, size: size)
                #expect(s.feed(d.frames(m)).events.map(\.payload) == [m])
            }
            #expect(small.allocations == allocations)
            #expect(small.live == live)
        }
    }

    /// Every allocation fails in turn: CWS_ERR_NOMEM, never a crash or a leak.
    @Test func allocationFailureAtEveryCallSite() {
        let wire = [0xc1, 0x07] + Self.helloCompressed
        var failures = 0
        for failAt in 0..<12 {
            let counter = ByteCounter()
            counter.failAt = failAt
            var alloc = counter.allocator
            withUnsafePointer(to: &alloc) { a in
                let s = Session(role: CWS_ROLE_CLIENT, pmd: params(), allocator: a)
                if s.status != CWS_OK.rawValue {
                    #expect(s.status == CWS_ERR_NOMEM.rawValue)
                    failures += 1
                    return
                }
                let r = s.feed(wire)
                if r.status != 0 {
                    #expect(r.status == CWS_ERR_NOMEM.rawValue && r.errorCode == 1011, "failAt \(failAt)")
                    failures += 1
                } else {
                    #expect(r.events.map(\.payload) == [Self.hello])
                }
            }
            #expect(counter.live == 0, "failAt \(failAt)")
        }
        #expect(failures >= 3) // engine, inflater handle, zlib state, window, reassembly
        for failAt in 0..<8 {
            let counter = ByteCounter()
            counter.failAt = failAt
            var alloc = counter.allocator
            withUnsafePointer(to: &alloc) { a in
                let d = Deflater(pmdConfig(threshold: 0), agreed: params(), allocator: a)
                if d.status != CWS_OK.rawValue {
                    #expect(d.status == CWS_ERR_NOMEM.rawValue)
                    return
                }
                let (st, _, p) = d.message(Self.hello)
                if st != CWS_OK.rawValue {
                    #expect(st == CWS_ERR_NOMEM.rawValue, "failAt \(failAt)")
                    // And it recovers once memory is there again.
                    counter.failAt = Int.max
                    #expect(d.message(Self.hello).2 == Self.helloCompressed)
                } else {
                    #expect(p == Self.helloCompressed)
                }
            }
            #expect(counter.live == 0, "failAt \(failAt)")
        }
    }

    @Test func invalidArguments() {
        // Engine: agreed window bits out of range.
        for bad in [params(s: 7), params(c: 16)] {
            #expect(Session(role: CWS_ROLE_SERVER, pmd: bad).status == CWS_ERR_INVALID_ARGUMENT.rawValue)
        }
        // Deflater: our agreed window 8 cannot be honoured; out-of-range config.
        #expect(Deflater(pmdConfig(), agreed: params(s: 8), role: CWS_ROLE_SERVER).status == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(Deflater(pmdConfig(), agreed: params(c: 8), role: CWS_ROLE_SERVER).status == CWS_OK.rawValue)
        #expect(Deflater(pmdConfig(), agreed: params(c: 8), role: CWS_ROLE_CLIENT).status == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(Deflater(pmdConfig(window: 8), agreed: nil).status == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(Deflater(pmdConfig(level: 10), agreed: nil).status == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(Deflater(pmdConfig(memLevel: 10), agreed: nil).status == CWS_ERR_INVALID_ARGUMENT.rawValue)
        // The agreed window caps the configured one.
        var rng = EngineRNG(seed: 14)
        let text = jsonLike(&rng, size: 3000)
        #expect(Deflater(pmdConfig(window: 15), agreed: params(s: 10)).message(text).2 ==
                Deflater(pmdConfig(window: 10), agreed: params()).message(text).2)
        cws_deflater_free(nil)
    }
}
