import CWebSocket
import Testing

/// Header parsing and writing, control and close frames, and fragmentation.
@Suite struct FrameTests {
    func parse(_ bytes: [UInt8], role: cws_role = CWS_ROLE_CLIENT, rsv: UInt8 = 0) -> (Int32, cws_frame_header, Int) {
        var h = cws_frame_header()
        var needed = 0
        let st = bytes.withUnsafeBytes { cws_frame_header_parse($0.baseAddress, $0.count, role, rsv, &h, &needed) }
        return (st, h, needed)
    }

    func write(fin: Bool = true, rsv: UInt8 = 0, op: UInt8, length: UInt64, mask: [UInt8]? = nil, cap: Int = 14) -> (Int32, [UInt8]) {
        var out = [UInt8](repeating: 0xEE, count: cap)
        var written = 0
        let st = out.withUnsafeMutableBytes { o -> Int32 in
            if let mask {
                return mask.withUnsafeBytes { cws_frame_header_write(o.baseAddress, cap, &written, fin, rsv, op, length, $0.baseAddress) }
            }
            return cws_frame_header_write(o.baseAddress, cap, &written, fin, rsv, op, length, nil)
        }
        return (st, Array(out.prefix(written)))
    }

    @Test func lengthFormsRoundTrip() {
        let cases: [(UInt64, Int)] = [(0, 2), (1, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (1 << 32, 10), (UInt64(Int64.max), 10)]
        for (len, hlen) in cases {
            for mask in [nil, [UInt8(1), 2, 3, 4]] {
                let (st, bytes) = write(op: 0x2, length: len, mask: mask)
                #expect(st == 0)
                #expect(bytes.count == hlen + (mask == nil ? 0 : 4))
                let (pst, h, needed) = parse(bytes, role: mask == nil ? CWS_ROLE_CLIENT : CWS_ROLE_SERVER)
                #expect(pst == 0)
                #expect(h.payload_length == len)
                #expect(Int(h.header_length) == bytes.count && needed == bytes.count)
                #expect(h.fin == 1 && h.opcode == 2 && h.masked == (mask == nil ? 0 : 1))
                if let mask { #expect([h.mask_key.0, h.mask_key.1, h.mask_key.2, h.mask_key.3] == mask) }
                // Every proper prefix asks for more.
                for cut in 0..<bytes.count {
                    let (cst, _, _) = parse(Array(bytes.prefix(cut)), role: mask == nil ? CWS_ROLE_CLIENT : CWS_ROLE_SERVER)
                    #expect(cst == CWS_WANT_READ.rawValue)
                }
            }
        }
    }

    @Test func writerRefusesWhatTheParserWouldReject() {
        #expect(write(op: 0x3, length: 0).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(write(op: 0xB, length: 0).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(write(fin: false, op: 0x9, length: 0).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(write(op: 0x9, length: 126).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(write(rsv: 0x80, op: 0x1, length: 0).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(write(op: 0x1, length: 1 << 63).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(write(op: 0x1, length: 65536, cap: 9).0 == CWS_ERR_BUFFER_TOO_SMALL.rawValue)
        let (st, b) = write(fin: false, rsv: 0x40, op: 0x1, length: 3)
        #expect(st == 0 && b == [0x41, 0x03])
    }

    @Test func controlFrameWrite() {
        var out = [UInt8](repeating: 0, count: Int(CWS_MAX_CONTROL_FRAME_SIZE))
        var written = 0
        let payload = Array("Hello".utf8)
        // RFC 6455 §5.7: the masked pong carrying "Hello".
        let key: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
        let st = out.withUnsafeMutableBytes { o in
            key.withUnsafeBytes { k in cws_control_frame_write(o.baseAddress, o.count, &written, UInt8(CWS_OP_PONG), payload, payload.count, k.baseAddress) }
        }
        #expect(st == 0)
        #expect(Array(out.prefix(written)) == [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
        let st2 = out.withUnsafeMutableBytes { cws_control_frame_write($0.baseAddress, $0.count, &written, UInt8(CWS_OP_PING), payload, payload.count, nil) }
        #expect(st2 == 0 && Array(out.prefix(written)) == [0x89, 0x05] + payload)
        let long = [UInt8](repeating: 0, count: 126)
        #expect(out.withUnsafeMutableBytes { cws_control_frame_write($0.baseAddress, $0.count, &written, UInt8(CWS_OP_PING), long, 126, nil) } == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(out.withUnsafeMutableBytes { cws_control_frame_write($0.baseAddress, $0.count, &written, UInt8(CWS_OP_CLOSE), nil, 0, nil) } == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(out.withUnsafeMutableBytes { cws_control_frame_write($0.baseAddress, 6, &written, UInt8(CWS_OP_PING), payload, payload.count, nil) } == CWS_ERR_BUFFER_TOO_SMALL.rawValue)
    }

    func writeClose(_ code: UInt16, _ reason: [UInt8], mask: [UInt8]? = nil) -> (Int32, [UInt8]) {
        var out = [UInt8](repeating: 0, count: Int(CWS_MAX_CONTROL_FRAME_SIZE))
        var written = 0
        let st = out.withUnsafeMutableBytes { o -> Int32 in
            reason.withUnsafeBytes { r in
                if let mask { return mask.withUnsafeBytes { cws_close_frame_write(o.baseAddress, o.count, &written, code, r.baseAddress, r.count, $0.baseAddress) } }
                return cws_close_frame_write(o.baseAddress, o.count, &written, code, r.baseAddress, r.count, nil)
            }
        }
        return (st, Array(out.prefix(written)))
    }

    @Test func closeFrameWrite() {
        #expect(writeClose(1000, []) == (0, [0x88, 0x02, 0x03, 0xE8]))
        #expect(writeClose(4001, Array("bye".utf8)) == (0, [0x88, 0x05, 0x0F, 0xA1, 0x62, 0x79, 0x65]))
        #expect(writeClose(0, []) == (0, [0x88, 0x00]))
        for code: UInt16 in [1004, 1005, 1006, 1015, 999, 5000, 2000] {
            #expect(writeClose(code, []).0 == CWS_ERR_INVALID_CLOSE_CODE.rawValue)
        }
        #expect(writeClose(1000, [UInt8](repeating: 0x61, count: 123)).0 == 0)
        #expect(writeClose(1000, [UInt8](repeating: 0x61, count: 124)).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(writeClose(1000, [0xC0, 0x80]).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        #expect(writeClose(0, [0x61]).0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        // A masked close frame written by the client is read back by a server engine.
        let (st, bytes) = writeClose(3000, Array("über".utf8), mask: [9, 8, 7, 6])
        #expect(st == 0)
        #expect(run(bytes).events == [.close(3000, "über")])
    }

    @Test func fragmenterSplitsAndTheEngineReassembles() {
        var rng = EngineRNG(seed: 3)
        for (total, max) in [(0, 4), (10, 3), (10, 10), (10, 0), (1000, 125), (70000, 65536), (5, 1)] as [(Int, UInt64)] {
            let msg = (0..<total).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var f = cws_fragmenter()
            #expect(cws_fragmenter_init(&f, UInt8(CWS_OP_BINARY), 0x40, UInt64(total), max) == 0)
            var stream: [UInt8] = []
            var offset = 0
            var frames = 0
            let key: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF]
            while true {
                var hdr = [UInt8](repeating: 0, count: 14)
                var written = 0
                var n: UInt64 = 0
                let st = hdr.withUnsafeMutableBytes { h in key.withUnsafeBytes { cws_fragmenter_next(&f, h.baseAddress, 14, &written, &n, $0.baseAddress) } }
                if st == CWS_DONE.rawValue { break }
                #expect(st == 0)
                frames += 1
                let h = Array(hdr.prefix(written))
                // RSV1 on the first frame only; opcode on the first only; FIN on the last only.
                #expect((h[0] & 0x40 != 0) == (frames == 1))
                #expect((h[0] & 0x0F) == (frames == 1 ? 2 : 0))
                #expect((h[0] & 0x80 != 0) == (offset + Int(n) == total))
                if max > 0 { #expect(n <= max) }
                var body = Array(msg[offset..<(offset + Int(n))])
                key.withUnsafeBytes { k in body.withUnsafeMutableBytes { _ = cws_mask($0.baseAddress, $0.count, k.baseAddress, 0) } }
                stream += h + body
                offset += Int(n)
            }
            #expect(offset == total)
            let expectedFrames = max == 0 ? 1 : Swift.max(1, (total + Int(max) - 1) / Int(max))
            #expect(frames == expectedFrames)
            let r = run(stream, config: makeConfig(maxMessage: 1 << 20, maxFrame: 1 << 20, allowedRSV: 0x40))
            #expect(r.status == 0)
            #expect(r.events == [Event(type: 2, payload: msg, rsv: 0x40)])
        }
        var f = cws_fragmenter()
        #expect(cws_fragmenter_init(&f, UInt8(CWS_OP_PING), 0, 1, 0) == CWS_ERR_INVALID_ARGUMENT.rawValue)
    }

    @Test func statusTable() {
        let all: [cws_status] = [CWS_ERR_RESERVED_OPCODE, CWS_ERR_RESERVED_BITS, CWS_ERR_CONTROL_FRAGMENTED, CWS_ERR_CONTROL_TOO_LONG,
                                 CWS_ERR_LENGTH_TOP_BIT, CWS_ERR_UNMASKED, CWS_ERR_MASKED, CWS_ERR_UNEXPECTED_CONTINUATION,
                                 CWS_ERR_EXPECTED_CONTINUATION, CWS_ERR_CLOSE_PAYLOAD, CWS_ERR_CLOSE_CODE]
        for s in all { #expect(cws_status_close_code(s.rawValue) == 1002) }
        #expect(cws_status_close_code(CWS_ERR_INVALID_UTF8.rawValue) == 1007)
        #expect(cws_status_close_code(CWS_ERR_CLOSE_REASON_UTF8.rawValue) == 1007)
        #expect(cws_status_close_code(CWS_ERR_MESSAGE_TOO_BIG.rawValue) == 1009)
        #expect(cws_status_close_code(CWS_ERR_FRAME_TOO_BIG.rawValue) == 1009)
        #expect(cws_status_close_code(CWS_ERR_NOMEM.rawValue) == 1011)
        #expect(cws_status_close_code(CWS_OK.rawValue) == 0)
        #expect(cws_status_close_code(CWS_ERR_INVALID_ARGUMENT.rawValue) == 0)
        #expect(String(cString: cws_strerror(-999)) == "unknown status")
        // Every close code the table gives is one that may be sent.
        for s in all + [CWS_ERR_INVALID_UTF8, CWS_ERR_MESSAGE_TOO_BIG, CWS_ERR_NOMEM] {
            #expect(cws_close_code_is_valid(cws_status_close_code(s.rawValue)))
        }
    }
}
