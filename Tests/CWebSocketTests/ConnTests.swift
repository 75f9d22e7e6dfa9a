import CWebSocket
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The connection engine: RFC 6455 examples, every rejection with its close code, chunking,
/// zero-copy delivery and the memory limits.
@Suite struct ConnTests {
    static let hello = Array("Hello".utf8)

    // MARK: RFC 6455 §5.7 examples

    @Test func rfcSingleFrameUnmaskedText() {
        let r = run([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], config: makeConfig(role: CWS_ROLE_CLIENT))
        #expect(r.status == 0)
        #expect(r.events == [.text("Hello")])
        #expect(r.inPlace == 1)
    }

    @Test func rfcSingleFrameMaskedText() {
        let r = run([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
        #expect(r.events == [.text("Hello")])
        #expect(r.inPlace == 1)
    }

    @Test func rfcFragmentedUnmaskedText() {
        let bytes: [UInt8] = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
        let r = run(bytes, config: makeConfig(role: CWS_ROLE_CLIENT))
        #expect(r.status == 0)
        #expect(r.events == [.text("Hello")])
        #expect(r.inPlace == 0) // reassembled in the engine's buffer
    }

    @Test func rfcPingAndMaskedPong() {
        let ping = run([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], config: makeConfig(role: CWS_ROLE_CLIENT))
        #expect(ping.events == [.ping(Self.hello)])
        let pong = run([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
        #expect(pong.events == [.pong(Self.hello)])
    }

    @Test func rfc256ByteAnd64KiBBinaryHeaders() {
        var rng = EngineRNG(seed: 1)
        let p256 = (0..<256).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let f256 = [0x82, 0x7E, 0x01, 0x00] + p256
        #expect(run(f256, config: makeConfig(role: CWS_ROLE_CLIENT)).events == [.binary(p256)])
        let p64k = (0..<65536).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let f64k: [UInt8] = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] + p64k
        let r = run(f64k, config: makeConfig(role: CWS_ROLE_CLIENT))
        #expect(r.events == [.binary(p64k)])
        #expect(r.inPlace == 1)
        // The same through the writer: the header it writes for 256 and 65536 bytes is the RFC's.
        #expect(Array(frame(0x2, p256, mask: nil).prefix(4)) == [0x82, 0x7E, 0x01, 0x00])
        #expect(Array(frame(0x2, p64k, mask: nil).prefix(10)) == [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
    }

    // MARK: Rejections, each with its close code

    func expectError(_ bytes: [UInt8], _ status: cws_status, _ code: UInt16, config: cws_config = makeConfig(),
                     sourceLocation: SourceLocation = #_sourceLocation) {
        let r = run(bytes, config: config)
        #expect(r.status == status.rawValue, "status \(r.status) \(String(cString: cws_strerror(r.status)))", sourceLocation: sourceLocation)
        #expect(r.errorCode == code, sourceLocation: sourceLocation)
        #expect(cws_status_close_code(status.rawValue) == code, sourceLocation: sourceLocation)
    }

    @Test func reservedOpcodes() {
        for op: UInt8 in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            expectError(rawFrame(b0: 0x80 | op, b1: 0x80, mask: [1, 2, 3, 4]), CWS_ERR_RESERVED_OPCODE, 1002)
            // The first byte alone is enough to refuse it.
            expectError([0x80 | op], CWS_ERR_RESERVED_OPCODE, 1002)
        }
    }

    @Test func reservedBitsWithoutExtension() {
        for rsv: UInt8 in [0x40, 0x20, 0x10, 0x70] {
            expectError(frame(0x1, Self.hello, rsv: rsv), CWS_ERR_RESERVED_BITS, 1002)
        }
        // With RSV1 negotiated (permessage-deflate), RSV1 on a first frame is accepted and reported...
        let cfg = makeConfig(allowedRSV: 0x40)
        let ok = run(frame(0x2, Self.hello, rsv: 0x40), config: cfg)
        #expect(ok.events == [Event(type: 2, payload: Self.hello, rsv: 0x40)])
        // ...but RSV2 still is not, and RSV1 on a continuation frame never is (RFC 7692 §6.1).
        expectError(frame(0x2, Self.hello, rsv: 0x20), CWS_ERR_RESERVED_BITS, 1002, config: cfg)
        expectError(frame(0x2, [1], fin: false, rsv: 0x40) + frame(0x0, [2], rsv: 0x40), CWS_ERR_RESERVED_BITS, 1002, config: cfg)
        // RSV1 on a control frame is refused even when negotiated.
        expectError(rawFrame(b0: 0xC9, b1: 0x80, mask: [1, 2, 3, 4]), CWS_ERR_RESERVED_BITS, 1002, config: cfg)
    }

    @Test func fragmentedControlFrames() {
        for op: UInt8 in [0x8, 0x9, 0xA] {
            expectError(rawFrame(b0: op, b1: 0x80, mask: [1, 2, 3, 4]), CWS_ERR_CONTROL_FRAGMENTED, 1002)
        }
    }

    @Test func controlFramesLongerThan125() {
        for op: UInt8 in [0x8, 0x9, 0xA] {
            expectError(rawFrame(b0: 0x80 | op, b1: 0x80 | 126, extended: [0, 126], mask: [1, 2, 3, 4],
                                 payload: [UInt8](repeating: 0x61, count: 126)), CWS_ERR_CONTROL_TOO_LONG, 1002)
            expectError(rawFrame(b0: 0x80 | op, b1: 0x80 | 127, extended: [0, 0, 0, 0, 0, 0, 0, 200], mask: [1, 2, 3, 4]),
                        CWS_ERR_CONTROL_TOO_LONG, 1002)
        }
        // 125 is the largest allowed.
        let ok = run(frame(0x9, [UInt8](repeating: 0x61, count: 125)))
        #expect(ok.events == [.ping([UInt8](repeating: 0x61, count: 125))])
    }

    @Test func lengthWithTopBitSet() {
        expectError(rawFrame(b0: 0x82, b1: 0xFF, extended: [0x80, 0, 0, 0, 0, 0, 0, 1], mask: [1, 2, 3, 4]),
                    CWS_ERR_LENGTH_TOP_BIT, 1002)
        // Refused as soon as the first length byte arrives.
        expectError([0x82, 0xFF, 0x80], CWS_ERR_LENGTH_TOP_BIT, 1002)
    }

    @Test func maskingRules() {
        expectError(frame(0x1, Self.hello, mask: nil), CWS_ERR_UNMASKED, 1002)
        expectError(frame(0x1, Self.hello), CWS_ERR_MASKED, 1002, config: makeConfig(role: CWS_ROLE_CLIENT))
    }

    @Test func continuationRules() {
        expectError(frame(0x0, Self.hello), CWS_ERR_UNEXPECTED_CONTINUATION, 1002)
        expectError(frame(0x1, [0x61], fin: false) + frame(0x1, [0x62]), CWS_ERR_EXPECTED_CONTINUATION, 1002)
        expectError(frame(0x2, [0x61], fin: false) + frame(0x2, [0x62], fin: false), CWS_ERR_EXPECTED_CONTINUATION, 1002)
        // A finished message lets a continuation frame be unexpected again.
        expectError(frame(0x1, [0x61], fin: false) + frame(0x0, [0x62]) + frame(0x0, [0x63]),
                    CWS_ERR_UNEXPECTED_CONTINUATION, 1002)
    }

    @Test func closeFrames() {
        expectError(frame(0x8, [0x03]), CWS_ERR_CLOSE_PAYLOAD, 1002)
        let invalid: [UInt16] = [0, 1, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 2000, 2999, 5000, 65535]
        for code in invalid {
            expectError(frame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)]), CWS_ERR_CLOSE_CODE, 1002)
            #expect(!cws_close_code_is_valid(code))
        }
        let valid: [UInt16] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
        for code in valid {
            let r = run(frame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array("bye".utf8)))
            #expect(r.events == [.close(code, "bye")])
            #expect(cws_close_code_is_valid(code))
        }
        // An empty close frame reports 1005, which is never sent.
        #expect(run(frame(0x8, [])).events == [.close(1005)])
        // The reason must be UTF-8.
        expectError(frame(0x8, [0x03, 0xE8, 0xC0, 0xAF]), CWS_ERR_CLOSE_REASON_UTF8, 1007)
        expectError(frame(0x8, [0x03, 0xE8, 0xE2, 0x82]), CWS_ERR_CLOSE_REASON_UTF8, 1007)
    }

    @Test func inputAfterCloseIsDiscarded() {
        var cfg = makeConfig()
        var conn: OpaquePointer? = nil
        #expect(cws_conn_new(&cfg, &conn) == 0)
        defer { cws_conn_free(conn) }
        var bytes = frame(0x8, [0x03, 0xE8]) + frame(0x1, Self.hello)
        var used = 0
        var ev = cws_event()
        let st = bytes.withUnsafeMutableBytes { cws_conn_parse(conn, $0.baseAddress, $0.count, &used, &ev) }
        #expect(st == CWS_OK.rawValue)
        #expect(ev.type == UInt8(CWS_EVENT_CLOSE.rawValue) && ev.close_code == 1000)
        #expect(used == 8)
        let rest = bytes.count - used
        let st2 = bytes.withUnsafeMutableBytes { cws_conn_parse(conn, $0.baseAddress! + used, rest, &used, &ev) }
        #expect(st2 == CWS_CLOSED.rawValue)
        #expect(used == rest)
    }

    @Test func invalidUTF8Text() {
        // Single frame, fragmented, and a sequence cut by a fragment boundary that turns out bad.
        expectError(frame(0x1, [0x61, 0xC3, 0x28]), CWS_ERR_INVALID_UTF8, 1007)
        expectError(frame(0x1, [0x61, 0xE2, 0x82]), CWS_ERR_INVALID_UTF8, 1007) // truncated at the end
        expectError(frame(0x1, [0x61, 0xE2], fin: false) + frame(0x0, [0x82, 0x28]), CWS_ERR_INVALID_UTF8, 1007)
        expectError(frame(0x1, [0xED, 0xA0, 0x80]), CWS_ERR_INVALID_UTF8, 1007) // surrogate
        // A sequence split across fragments is fine when it completes: U+20AC "€" = E2 82 AC.
        let ok = run(frame(0x1, [0x61, 0xE2], fin: false) + frame(0x0, [0x82], fin: false) + frame(0x0, [0xAC]))
        #expect(ok.events == [.text("a€")])
        // Binary messages are not validated.
        #expect(run(frame(0x2, [0xC0, 0xFF])).events == [.binary([0xC0, 0xFF])])
    }

    @Test func invalidUTF8FailsFastBeforeTheMessageEnds() {
        // The first fragment already holds an impossible sequence: the error comes without the rest.
        expectError(frame(0x1, [0x61, 0xF5], fin: false), CWS_ERR_INVALID_UTF8, 1007)
        expectError(frame(0x1, [0x61, 0xE0, 0x80], fin: false), CWS_ERR_INVALID_UTF8, 1007)
        // A partial single frame: its first bytes already fail, before the frame is complete.
        let big = frame(0x1, [0x61, 0xFF] + [UInt8](repeating: 0x61, count: 1000))
        expectError(Array(big.prefix(20)), CWS_ERR_INVALID_UTF8, 1007)
        // Whereas a valid prefix of a partial frame is simply waiting for more.
        let good = frame(0x1, [UInt8](repeating: 0x61, count: 1000))
        #expect(run(Array(good.prefix(20))).status == 0)
    }

    @Test func messageAndFrameLimits() {
        let cfg = makeConfig(maxMessage: 100, maxFrame: 60)
        // A frame header announcing more than the limit is refused from the header alone.
        expectError(Array(frame(0x2, [UInt8](repeating: 1, count: 61)).prefix(6)), CWS_ERR_FRAME_TOO_BIG, 1009, config: cfg)
        let cfg2 = makeConfig(maxMessage: 100, maxFrame: 1000)
        expectError(Array(frame(0x2, [UInt8](repeating: 1, count: 101)).prefix(8)), CWS_ERR_MESSAGE_TOO_BIG, 1009, config: cfg2)
        // Fragments adding up past the limit: refused on the header of the fragment that crosses it.
        let frags = frame(0x2, [UInt8](repeating: 1, count: 50), fin: false) + frame(0x0, [UInt8](repeating: 2, count: 50), fin: false)
        let over = frags + Array(frame(0x0, [3]).prefix(6))
        expectError(over, CWS_ERR_MESSAGE_TOO_BIG, 1009, config: cfg2)
        // Exactly at the limit is fine.
        let exact = frags + frame(0x0, [])
        #expect(run(exact, config: cfg2).events == [.binary([UInt8](repeating: 1, count: 50) + [UInt8](repeating: 2, count: 50))])
        // A 64-bit length near 2^63 does not overflow the check.
        expectError(rawFrame(b0: 0x82, b1: 0xFF, extended: [0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], mask: [1, 2, 3, 4]),
                    CWS_ERR_FRAME_TOO_BIG, 1009)
    }

    @Test func errorsAreSticky() {
        var cfg = makeConfig()
        var conn: OpaquePointer? = nil
        #expect(cws_conn_new(&cfg, &conn) == 0)
        defer { cws_conn_free(conn) }
        var bad = rawFrame(b0: 0x83, b1: 0x80, mask: [1, 2, 3, 4])
        var good = frame(0x1, Self.hello)
        var used = 0
        var ev = cws_event()
        let st = bad.withUnsafeMutableBytes { cws_conn_parse(conn, $0.baseAddress, $0.count, &used, &ev) }
        #expect(st == CWS_ERR_RESERVED_OPCODE.rawValue)
        let st2 = good.withUnsafeMutableBytes { cws_conn_parse(conn, $0.baseAddress, $0.count, &used, &ev) }
        #expect(st2 == CWS_ERR_RESERVED_OPCODE.rawValue)
        #expect(ev.type == UInt8(CWS_EVENT_ERROR.rawValue) && ev.close_code == 1002)
        #expect(String(cString: cws_strerror(st2)) == "reserved opcode")
    }

    // MARK: Chunking

    /// A conversation that exercises every path: single frames of each length form, fragments with
    /// control frames between them, empty frames, and a close at the end.
    static func conversation(role: cws_role) -> (bytes: [UInt8], events: [Event]) {
        var rng = EngineRNG(seed: 42)
        let mask: [UInt8]? = role == CWS_ROLE_SERVER ? [0xA1, 0x02, 0xF3, 0x44] : nil
        var bytes: [UInt8] = []
        var events: [Event] = []
        let text = "κόσμε — 𝄞 héllo wörld "
        for n in [0, 1, 5, 125, 126, 300, 65535] {
            var s = ""
            while s.utf8.count < n { s += text }
            let t = Array(s.utf8.prefix(n))
            // Cut at a scalar boundary so the message is valid UTF-8.
            var cut = t
            while String(validating: cut, as: UTF8.self) == nil { cut.removeLast() }
            bytes += frame(0x1, cut, mask: mask)
            events.append(Event(type: 1, payload: cut))
            let b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            bytes += frame(0x2, b, mask: mask)
            events.append(.binary(b))
        }
        // Fragmented text cut inside a multi-byte sequence, with a ping and a pong in between.
        let msg = Array("fragments: 𝄞𝄞𝄞 ünïcødé".utf8)
        bytes += frame(0x1, Array(msg[0..<13]), fin: false, mask: mask)
        bytes += frame(0x9, Array("p1".utf8), mask: mask)
        events.append(.ping(Array("p1".utf8)))
        bytes += frame(0x0, Array(msg[13..<15]), fin: false, mask: mask)
        bytes += frame(0x0, [], fin: false, mask: mask)
        bytes += frame(0xA, [], mask: mask)
        events.append(.pong([]))
        bytes += frame(0x0, Array(msg[15...]), mask: mask)
        events.append(Event(type: 1, payload: msg))
        // Fragmented binary in many small pieces.
        var whole: [UInt8] = []
        for i in 0..<20 {
            let piece = (0..<(i * 7)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            whole += piece
            bytes += frame(i == 0 ? 0x2 : 0x0, piece, fin: i == 19, mask: mask)
        }
        events.append(.binary(whole))
        bytes += frame(0x8, [0x0F, 0xA1] + Array("done".utf8), mask: mask) // 4001
        events.append(.close(4001, "done"))
        return (bytes, events)
    }

    @Test(arguments: [CWS_ROLE_SERVER, CWS_ROLE_CLIENT])
    func chunkingGivesTheSameEvents(role: cws_role) {
        let (bytes, expected) = Self.conversation(role: role)
        let cfg = makeConfig(role: role)
        let whole = run(bytes, config: cfg)
        #expect(whole.status == 0)
        #expect(whole.events == expected)
        #expect(whole.consumed == bytes.count)
        // One byte at a time.
        let ones = run(bytes, config: cfg, chunks: Array(repeating: 1, count: bytes.count))
        #expect(ones.events == expected)
        #expect(ones.status == 0)
        // Random chunk sizes, several seeds.
        var rng = EngineRNG(seed: 7)
        for _ in 0..<30 {
            var sizes: [Int] = []
            var total = 0
            while total < bytes.count {
                let n = Int.random(in: 1...(Bool.random(using: &rng) ? 20 : 5000), using: &rng)
                sizes.append(n)
                total += n
            }
            let r = run(bytes, config: cfg, chunks: sizes)
            #expect(r.events == expected)
            #expect(r.status == 0)
        }
    }

    @Test func everySplitPointOfASmallConversation() {
        let bytes = frame(0x1, Array("héllo".utf8)) + frame(0x9, [1, 2, 3]) + frame(0x2, [UInt8](repeating: 9, count: 130), fin: false)
            + frame(0x0, [7, 7], fin: true) + frame(0x8, [0x03, 0xE8])
        let expected = run(bytes).events
        #expect(expected.count == 4)
        for a in 1..<bytes.count {
            for b in stride(from: a + 1, to: bytes.count, by: 7) {
                #expect(run(bytes, chunks: [a, b - a]).events == expected)
            }
        }
    }

    @Test func zeroCopyDelivery() {
        // Whole single frames are delivered in place; split or fragmented ones are not.
        let bytes = frame(0x1, Self.hello) + frame(0x2, [1, 2, 3]) + frame(0x9, [4])
        #expect(run(bytes).inPlace == 3)
        // A header split across reads still delivers its payload in place when the payload is whole.
        #expect(run(bytes, chunks: [3]).inPlace == 3)
        // A payload split across reads is copied.
        #expect(run(bytes, chunks: [8]).inPlace == 2)
    }

    // MARK: Memory

    @Test func memoryStaysWithinTheMessageLimit() {
        let counter = AllocCounter()
        var alloc = counter.allocator
        var cfg = makeConfig(maxMessage: 10_000, maxFrame: 10_000)
        withUnsafePointer(to: &alloc) { a in
            cfg.allocator = a
            // Many fragments adding up to exactly the limit, fed one small piece at a time.
            var bytes: [UInt8] = []
            for i in 0..<100 { bytes += frame(i == 0 ? 0x2 : 0x0, [UInt8](repeating: UInt8(i), count: 100), fin: i == 99) }
            let r = run(bytes, config: cfg, chunks: Array(repeating: 13, count: bytes.count / 13 + 1))
            #expect(r.events.count == 1 && r.events[0].payload.count == 10_000)
            // Then a header announcing 1 GiB: refused without allocating for it.
            let before = counter.peakBlock
            let huge = run(rawFrame(b0: 0x82, b1: 0xFF, extended: [0, 0, 0, 0, 0x40, 0, 0, 0], mask: [1, 2, 3, 4]), config: cfg)
            #expect(huge.status == CWS_ERR_FRAME_TOO_BIG.rawValue)
            #expect(counter.peakBlock == before)
        }
        #expect(counter.peakBlock <= 10_000)
        #expect(counter.live == 0)
    }

    @Test func wholeFramesAllocateNothing() {
        let counter = AllocCounter()
        var alloc = counter.allocator
        var cfg = makeConfig()
        withUnsafePointer(to: &alloc) { a in
            cfg.allocator = a
            var bytes: [UInt8] = []
            for i in 0..<200 { bytes += frame(0x1, Array("message \(i)".utf8)) }
            let r = run(bytes, config: cfg)
            #expect(r.events.count == 200)
        }
        // Only the engine itself was allocated.
        #expect(counter.allocations == 1)
        #expect(counter.live == 0)
    }

    @Test func failingAllocatorGivesNomem() {
        let counter = AllocCounter()
        counter.failAfter = 1 // the engine itself succeeds, reassembly fails
        var alloc = counter.allocator
        var cfg = makeConfig()
        withUnsafePointer(to: &alloc) { a in
            cfg.allocator = a
            let r = run(frame(0x2, [1, 2], fin: false), config: cfg)
            #expect(r.status == CWS_ERR_NOMEM.rawValue)
            #expect(r.errorCode == 1011)
        }
        #expect(counter.live == 0)
    }
}

/// Counts allocations made through a cws_allocator.
final class AllocCounter {
    var allocations = 0
    var live = 0
    var peakBlock = 0
    var failAfter = Int.max
    var sizes: [UnsafeMutableRawPointer: Int] = [:]

    var allocator: cws_allocator {
        var a = cws_allocator()
        a.user = Unmanaged.passUnretained(self).toOpaque()
        a.alloc = { size, user in
            let me = Unmanaged<AllocCounter>.fromOpaque(user!).takeUnretainedValue()
            if me.allocations >= me.failAfter { return nil }
            me.allocations += 1
            me.live += 1
            me.peakBlock = max(me.peakBlock, size)
            let p = malloc(size)!
            me.sizes[p] = size
            return p
        }
        a.realloc = { ptr, size, user in
            let me = Unmanaged<AllocCounter>.fromOpaque(user!).takeUnretainedValue()
            if me.allocations >= me.failAfter { return nil }
            me.allocations += 1
            if ptr == nil { me.live += 1 } else { me.sizes[ptr!] = nil }
            me.peakBlock = max(me.peakBlock, size)
            let p = realloc(ptr, size)!
            me.sizes[p] = size
            return p
        }
        a.free = { ptr, user in
            guard let ptr else { return }
            let me = Unmanaged<AllocCounter>.fromOpaque(user!).takeUnretainedValue()
            me.live -= 1
            me.sizes[ptr] = nil
            free(ptr)
        }
        return a
    }
}
