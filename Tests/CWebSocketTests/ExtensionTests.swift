import CWebSocket
import Testing

/// permessage-deflate negotiation (RFC 7692 §5, §7.1): the server's decision on the client's
/// offers, the client's offer and its check of the server's answer.
@Suite struct ExtensionTests {
    // MARK: Helpers

    static func config(window: UInt8 = 15, peerWindow: UInt8 = 15, nct: Bool = false, peerNCT: Bool = false,
                       shared: Bool = false) -> cws_pmd_config {
        var c = cws_pmd_config()
        cws_pmd_config_init(&c)
        c.window_bits = window
        c.peer_window_bits = peerWindow
        c.no_context_takeover = nct
        c.peer_no_context_takeover = peerNCT
        c.memory = shared ? CWS_PMD_MEMORY_SHARED : CWS_PMD_MEMORY_DEDICATED
        return c
    }

    struct Outcome: Equatable, CustomStringConvertible {
        var status: Int32
        var response: String = ""
        var agreed: Params? = nil
        var description: String { "\(status) '\(response)' \(agreed.map { "\($0)" } ?? "-")" }
    }

    struct Params: Equatable, CustomStringConvertible {
        var s: UInt8, c: UInt8, snct: Bool, cnct: Bool
        init(s: UInt8 = 15, c: UInt8 = 15, snct: Bool = false, cnct: Bool = false) {
            self.s = s; self.c = c; self.snct = snct; self.cnct = cnct
        }
        init(_ p: cws_pmd_params) {
            self.init(s: p.server_max_window_bits, c: p.client_max_window_bits, snct: p.server_no_context_takeover,
                      cnct: p.client_no_context_takeover)
        }
        var description: String { "s=\(s) c=\(c) snct=\(snct) cnct=\(cnct)" }
    }

    static func negotiate(_ cfg: cws_pmd_config, _ offers: String, cap: Int = Int(CWS_PMD_HEADER_MAX)) -> Outcome {
        var cfg = cfg
        var agreed = cws_pmd_params(server_max_window_bits: 99, client_max_window_bits: 99,
                                    server_no_context_takeover: false, client_no_context_takeover: false)
        var out = [UInt8](repeating: 0xEE, count: cap)
        var written = 12345
        let bytes = Array(offers.utf8)
        let st = bytes.withUnsafeBytes { b in
            out.withUnsafeMutableBytes { o in
                cws_pmd_negotiate(&cfg, b.baseAddress, b.count, &agreed, o.baseAddress, o.count, &written)
            }
        }
        if st != CWS_OK.rawValue {
            // Nothing is reported unless the call succeeded.
            #expect(written == 12345)
            #expect(agreed.server_max_window_bits == 99)
            return Outcome(status: st)
        }
        #expect(written <= cap)
        return Outcome(status: st, response: String(decoding: out[0..<written], as: UTF8.self), agreed: Params(agreed))
    }

    static func offer(_ cfg: cws_pmd_config) -> String {
        var cfg = cfg
        var out = [UInt8](repeating: 0, count: Int(CWS_PMD_HEADER_MAX))
        var written = 0
        let st = out.withUnsafeMutableBytes { cws_pmd_offer_write(&cfg, $0.baseAddress, $0.count, &written) }
        precondition(st == CWS_OK.rawValue)
        return String(decoding: out[0..<written], as: UTF8.self)
    }

    static func accept(_ cfg: cws_pmd_config, _ response: String) -> (Int32, Params?) {
        var cfg = cfg
        var agreed = cws_pmd_params()
        let bytes = Array(response.utf8)
        let st = bytes.withUnsafeBytes { cws_pmd_response_accept(&cfg, $0.baseAddress, $0.count, &agreed) }
        return (st, st == CWS_OK.rawValue ? Params(agreed) : nil)
    }

    static let ok = CWS_OK.rawValue
    static let declined = CWS_PMD_DECLINED.rawValue
    static let badResponse = CWS_ERR_PMD_RESPONSE.rawValue

    // MARK: Server: a hand-written table

    struct Row {
        var cfg: cws_pmd_config
        var offers: String
        var response: String?  // nil: declined
        var agreed: Params?
    }

    static let rows: [Row] = [
        // Plain offers, the answer states only what differs from the defaults.
        Row(cfg: config(), offers: "permessage-deflate", response: "permessage-deflate", agreed: Params()),
        Row(cfg: config(), offers: "permessage-deflate; client_max_window_bits",
            response: "permessage-deflate", agreed: Params()),
        Row(cfg: config(), offers: "permessage-deflate; client_max_window_bits=10",
            response: "permessage-deflate; client_max_window_bits=10", agreed: Params(c: 10)),
        Row(cfg: config(peerWindow: 12), offers: "permessage-deflate; client_max_window_bits",
            response: "permessage-deflate; client_max_window_bits=12", agreed: Params(c: 12)),
        Row(cfg: config(peerWindow: 12), offers: "permessage-deflate; client_max_window_bits=10",
            response: "permessage-deflate; client_max_window_bits=10", agreed: Params(c: 10)),
        // Without client_max_window_bits in the offer we may not ask; the client may use 15.
        Row(cfg: config(peerWindow: 12), offers: "permessage-deflate", response: "permessage-deflate", agreed: Params()),
        // The client may ask for a peer window of 8: that sizes only our inflater, fine.
        Row(cfg: config(), offers: "permessage-deflate; client_max_window_bits=8",
            response: "permessage-deflate; client_max_window_bits=8", agreed: Params(c: 8)),
        Row(cfg: config(), offers: "permessage-deflate; server_max_window_bits=10",
            response: "permessage-deflate; server_max_window_bits=10", agreed: Params(s: 10)),
        Row(cfg: config(window: 9), offers: "permessage-deflate; server_max_window_bits=10",
            response: "permessage-deflate; server_max_window_bits=9", agreed: Params(s: 9)),
        Row(cfg: config(window: 12), offers: "permessage-deflate",
            response: "permessage-deflate; server_max_window_bits=12", agreed: Params(s: 12)),
        Row(cfg: config(), offers: "permessage-deflate; server_max_window_bits=15",
            response: "permessage-deflate; server_max_window_bits=15", agreed: Params()),
        // 8 for our deflater: zlib cannot, so the offer is declined.
        Row(cfg: config(), offers: "permessage-deflate; server_max_window_bits=8", response: nil, agreed: nil),
        Row(cfg: config(window: 9), offers: "permessage-deflate; server_max_window_bits=8", response: nil, agreed: nil),
        Row(cfg: config(), offers: "permessage-deflate; server_no_context_takeover",
            response: "permessage-deflate; server_no_context_takeover", agreed: Params(snct: true)),
        Row(cfg: config(nct: true), offers: "permessage-deflate",
            response: "permessage-deflate; server_no_context_takeover", agreed: Params(snct: true)),
        Row(cfg: config(), offers: "permessage-deflate; client_no_context_takeover",
            response: "permessage-deflate; client_no_context_takeover", agreed: Params(cnct: true)),
        Row(cfg: config(peerNCT: true), offers: "permessage-deflate",
            response: "permessage-deflate; client_no_context_takeover", agreed: Params(cnct: true)),
        Row(cfg: config(), offers: "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=9; server_max_window_bits=11",
            response: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=9",
            agreed: Params(s: 11, c: 9, snct: true, cnct: true)),
        // Shared deflater: always no context takeover; one window size, so a smaller demand is declined.
        Row(cfg: config(shared: true), offers: "permessage-deflate",
            response: "permessage-deflate; server_no_context_takeover", agreed: Params(snct: true)),
        Row(cfg: config(shared: true), offers: "permessage-deflate; server_max_window_bits=10", response: nil, agreed: nil),
        Row(cfg: config(window: 10, shared: true), offers: "permessage-deflate; server_max_window_bits=12",
            response: "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
            agreed: Params(s: 10, snct: true)),
        // Syntax: case, whitespace, quoted values.
        Row(cfg: config(), offers: "PerMessage-Deflate ;\tServer_No_Context_Takeover ; CLIENT_MAX_WINDOW_BITS = 9 ",
            response: "permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
            agreed: Params(c: 9, snct: true)),
        Row(cfg: config(), offers: "permessage-deflate; server_max_window_bits=\"10\"",
            response: "permessage-deflate; server_max_window_bits=10", agreed: Params(s: 10)),
        Row(cfg: config(), offers: "permessage-deflate; client_max_window_bits=\"1\\2\"",
            response: "permessage-deflate; client_max_window_bits=12", agreed: Params(c: 12)),
        // Several offers: other extensions skipped, empty elements allowed, bad ones declined.
        Row(cfg: config(), offers: "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=11",
            response: "permessage-deflate; client_max_window_bits=11", agreed: Params(c: 11)),
        Row(cfg: config(), offers: " , ,permessage-deflate,", response: "permessage-deflate", agreed: Params()),
        Row(cfg: config(), offers: "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover",
            response: "permessage-deflate; server_no_context_takeover", agreed: Params(snct: true)),
        Row(cfg: config(), offers: "permessage-deflate; server_max_window_bits=10, permessage-deflate",
            response: "permessage-deflate; server_max_window_bits=10", agreed: Params(s: 10)),
        Row(cfg: config(), offers: "foo; a=\"x,y\"; b, permessage-deflate; x=\"1,2\", permessage-deflate; client_no_context_takeover",
            response: "permessage-deflate; client_no_context_takeover", agreed: Params(cnct: true)),
        Row(cfg: config(), offers: "permessage-deflate; a=\"unterminated, permessage-deflate", response: nil, agreed: nil),
        Row(cfg: config(), offers: "", response: nil, agreed: nil),
        Row(cfg: config(), offers: "   ", response: nil, agreed: nil),
        Row(cfg: config(), offers: "x-foo", response: nil, agreed: nil),
        Row(cfg: config(), offers: "permessage-deflate-x", response: nil, agreed: nil),
    ]

    @Test func negotiationTable() {
        for (i, row) in Self.rows.enumerated() {
            let got = Self.negotiate(row.cfg, row.offers)
            if let response = row.response {
                #expect(got == Outcome(status: Self.ok, response: response, agreed: row.agreed), "row \(i): \(row.offers)")
            } else {
                #expect(got == Outcome(status: Self.declined), "row \(i): \(row.offers)")
            }
        }
    }

    /// Each malformed offer is declined on its own, and a good offer after it still wins.
    @Test func malformedAndDuplicateParametersAreDeclined() {
        let bad = [
            "permessage-deflate; foo", "permessage-deflate; foo=1", "permessage-deflate; x-server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
            "permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; server_max_window_bits=7", "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08", "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1a", "permessage-deflate; server_max_window_bits=-9",
            "permessage-deflate; server_max_window_bits=9.0", "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=100", "permessage-deflate; client_max_window_bits=\"\"",
            "permessage-deflate; client_max_window_bits=\"1 0\"", "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate; client_max_window_bits=\"123456789\"",
            "permessage-deflate; server_no_context_takeover=true", "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; client_no_context_takeover=1", "permessage-deflate;", "permessage-deflate;;",
            "permessage-deflate; ;server_no_context_takeover", "permessage-deflate server_no_context_takeover",
            "permessage-deflate; =10", "permessage-deflate; server_max_window_bits==10",
            "permessage-deflate; server_max_window_bits=10 11", "permessage-deflate; server_max_window_bits=1\u{0}",
            ";permessage-deflate", "\"permessage-deflate\"", "permessage-deflate/1",
        ]
        for offer in bad {
            #expect(Self.negotiate(Self.config(), offer).status == Self.declined, "\(offer)")
            // An unterminated quoted-string runs to the end of the header, taking the next offer.
            if offer.hasSuffix("=\"10") { continue }
            let then = Self.negotiate(Self.config(), offer + ", permessage-deflate; client_max_window_bits=13")
            #expect(then == Outcome(status: Self.ok, response: "permessage-deflate; client_max_window_bits=13",
                                    agreed: Params(c: 13)), "\(offer)")
        }
    }

    /// Several header lines: joined with "," or tried one by one in order, the answer is the same.
    @Test func offersAcrossHeaderLines() {
        let lines = ["x-foo; bar", "permessage-deflate; server_max_window_bits=8", "permessage-deflate; client_max_window_bits=9",
                     "permessage-deflate"]
        let joined = Self.negotiate(Self.config(), lines.joined(separator: ","))
        var oneByOne = Outcome(status: Self.declined)
        for line in lines {
            let r = Self.negotiate(Self.config(), line)
            if r.status == Self.ok { oneByOne = r; break }
        }
        #expect(joined == oneByOne)
        #expect(joined.response == "permessage-deflate; client_max_window_bits=9")
    }

    // MARK: Server: every parameter combination against a model of RFC 7692 §7.1

    /// What the server should answer, written from the RFC's rules.
    static func model(_ cfg: cws_pmd_config, snct: Bool, cnct: Bool, smwb: Int?, cmwb: Int??) -> Outcome {
        let shared = cfg.memory == CWS_PMD_MEMORY_SHARED
        if let s = smwb {
            if s == 8 { return Outcome(status: Self.declined) }                       // zlib cannot
            if shared && s < Int(cfg.window_bits) { return Outcome(status: Self.declined) }
        }
        let sbits = min(Int(cfg.window_bits), smwb ?? 15)
        var cbits = 15
        var stateC = false
        if let c = cmwb {                                                              // offered
            cbits = min(Int(cfg.peer_window_bits), c ?? 15)
            stateC = cbits < 15 || c != nil
        }
        let p = Params(s: UInt8(sbits), c: UInt8(cbits), snct: snct || cfg.no_context_takeover || shared,
                       cnct: cnct || cfg.peer_no_context_takeover)
        var r = "permessage-deflate"
        if p.snct { r += "; server_no_context_takeover" }
        if p.cnct { r += "; client_no_context_takeover" }
        if sbits < 15 || smwb != nil { r += "; server_max_window_bits=\(sbits)" }
        if stateC { r += "; client_max_window_bits=\(cbits)" }
        return Outcome(status: Self.ok, response: r, agreed: p)
    }

    @Test func everyParameterCombination() {
        var rng = EngineRNG(seed: 7692)
        var configs: [cws_pmd_config] = []
        for w: UInt8 in [9, 12, 15] {
            for pw: UInt8 in [9, 10, 15] {
                for nct in [false, true] {
                    for pnct in [false, true] {
                        for shared in [false, true] {
                            configs.append(Self.config(window: w, peerWindow: pw, nct: nct, peerNCT: pnct, shared: shared))
                        }
                    }
                }
            }
        }
        var count = 0
        for snct in [false, true] {
            for cnct in [false, true] {
                for smwb in [nil] + (8...15).map({ Optional($0) }) {
                    let cmwbs: [Int??] = [nil, .some(nil)] + (8...15).map { .some(.some($0)) }
                    for cmwb in cmwbs {
                        var params: [String] = []
                        if snct { params.append("server_no_context_takeover") }
                        if cnct { params.append("client_no_context_takeover") }
                        if let s = smwb { params.append("server_max_window_bits=\(s)") }
                        if let c = cmwb { params.append(c.map { "client_max_window_bits=\($0)" } ?? "client_max_window_bits") }
                        for cfg in configs {
                            // The order of parameters must not matter.
                            params.shuffle(using: &rng)
                            let offer = (["permessage-deflate"] + params).joined(separator: "; ")
                            let want = Self.model(cfg, snct: snct, cnct: cnct, smwb: smwb, cmwb: cmwb)
                            let got = Self.negotiate(cfg, offer)
                            if got != want {
                                Issue.record("\(offer) with window \(cfg.window_bits)/\(cfg.peer_window_bits) nct \(cfg.no_context_takeover)/\(cfg.peer_no_context_takeover) memory \(cfg.memory): got \(got), want \(want)")
                            }
                            count += 1
                        }
                    }
                }
            }
        }
        #expect(count == 2 * 2 * 9 * 10 * 72)
    }

    // MARK: Server: buffers and arguments

    @Test func responseBufferAndArguments() {
        // The longest response fits CWS_PMD_HEADER_MAX exactly.
        let longest = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=15"
        #expect(longest.utf8.count == Int(CWS_PMD_HEADER_MAX))
        let full = Self.negotiate(Self.config(nct: true, peerNCT: true), "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15")
        #expect(full.response == longest)
        // One byte short: CWS_ERR_BUFFER_TOO_SMALL, nothing agreed.
        let answer = "permessage-deflate; client_max_window_bits=10"
        #expect(Self.negotiate(Self.config(), answer, cap: answer.utf8.count - 1).status == CWS_ERR_BUFFER_TOO_SMALL.rawValue)
        #expect(Self.negotiate(Self.config(), answer, cap: answer.utf8.count) ==
                Outcome(status: Self.ok, response: answer, agreed: Params(c: 10)))
        // Out-of-range configuration.
        for bad in [Self.config(window: 8), Self.config(window: 16), Self.config(peerWindow: 8), Self.config(peerWindow: 16)] {
            #expect(Self.negotiate(bad, "permessage-deflate").status == CWS_ERR_INVALID_ARGUMENT.rawValue)
            #expect(Self.accept(bad, "permessage-deflate").0 == CWS_ERR_INVALID_ARGUMENT.rawValue)
        }
        var level = Self.config()
        level.level = 10
        #expect(Self.negotiate(level, "permessage-deflate").status == CWS_ERR_INVALID_ARGUMENT.rawValue)
        var memory = Self.config()
        memory.memory = cws_pmd_memory(rawValue: 2)
        #expect(Self.negotiate(memory, "permessage-deflate").status == CWS_ERR_INVALID_ARGUMENT.rawValue)
        // NULL offers with length 0 is an empty header.
        var cfg = Self.config()
        var agreed = cws_pmd_params()
        var written = 0
        var out = [UInt8](repeating: 0, count: 128)
        let st = out.withUnsafeMutableBytes { cws_pmd_negotiate(&cfg, nil, 0, &agreed, $0.baseAddress, $0.count, &written) }
        #expect(st == Self.declined)
    }

    @Test func defaults() {
        var c = cws_pmd_config()
        cws_pmd_config_init(&c)
        #expect(c.window_bits == 15 && c.peer_window_bits == 15 && c.level == 1 && c.mem_level == 0)
        #expect(!c.no_context_takeover && !c.peer_no_context_takeover && c.threshold == 256)
        #expect(c.memory == CWS_PMD_MEMORY_DEDICATED)
        var cfg = cws_config()
        cws_config_init(&cfg, CWS_ROLE_SERVER)
        #expect(cfg.pmd == nil)
    }

    // MARK: Client

    @Test func clientOffers() {
        #expect(Self.offer(Self.config()) == "permessage-deflate; client_max_window_bits")
        #expect(Self.offer(Self.config(window: 10)) == "permessage-deflate; client_max_window_bits=10")
        #expect(Self.offer(Self.config(peerWindow: 9)) == "permessage-deflate; server_max_window_bits=9; client_max_window_bits")
        #expect(Self.offer(Self.config(nct: true, peerNCT: true)) ==
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits")
        #expect(Self.offer(Self.config(shared: true)) == "permessage-deflate; client_no_context_takeover; client_max_window_bits")
        var cfg = Self.config()
        var written = 0
        var small = [UInt8](repeating: 0, count: 10)
        #expect(small.withUnsafeMutableBytes { cws_pmd_offer_write(&cfg, $0.baseAddress, $0.count, &written) }
                == CWS_ERR_BUFFER_TOO_SMALL.rawValue)
    }

    @Test func clientAcceptsValidResponses() {
        let c = Self.config()
        #expect(Self.accept(c, "permessage-deflate") == (Self.ok, Params()))
        #expect(Self.accept(c, " Permessage-Deflate ") == (Self.ok, Params()))
        #expect(Self.accept(c, "permessage-deflate; server_no_context_takeover") == (Self.ok, Params(snct: true)))
        #expect(Self.accept(c, "permessage-deflate; client_no_context_takeover") == (Self.ok, Params(cnct: true)))
        // The server may state its window even unasked, 8 included (that only sizes our inflater).
        #expect(Self.accept(c, "permessage-deflate; server_max_window_bits=8") == (Self.ok, Params(s: 8)))
        #expect(Self.accept(c, "permessage-deflate; client_max_window_bits=9") == (Self.ok, Params(c: 9)))
        #expect(Self.accept(c, "permessage-deflate; client_max_window_bits=\"12\"") == (Self.ok, Params(c: 12)))
        // Our smaller window stands when the server says nothing.
        #expect(Self.accept(Self.config(window: 11), "permessage-deflate") == (Self.ok, Params(c: 11)))
        #expect(Self.accept(Self.config(window: 11), "permessage-deflate; client_max_window_bits=10") == (Self.ok, Params(c: 10)))
        // Asked-for parameters, answered.
        #expect(Self.accept(Self.config(peerWindow: 10), "permessage-deflate; server_max_window_bits=10") == (Self.ok, Params(s: 10)))
        #expect(Self.accept(Self.config(peerWindow: 10), "permessage-deflate; server_max_window_bits=9") == (Self.ok, Params(s: 9)))
        #expect(Self.accept(Self.config(peerNCT: true), "permessage-deflate; server_no_context_takeover") == (Self.ok, Params(snct: true)))
        // We promised no context takeover ourselves: that is agreed whatever the server says.
        #expect(Self.accept(Self.config(nct: true), "permessage-deflate") == (Self.ok, Params(cnct: true)))
        #expect(Self.accept(Self.config(shared: true), "permessage-deflate") == (Self.ok, Params(cnct: true)))
        // Nothing accepted.
        #expect(Self.accept(c, "") == (Self.declined, nil))
        #expect(Self.accept(c, " , ") == (Self.declined, nil))
    }

    @Test func clientRejectsInvalidResponses() {
        let c = Self.config()
        let bad: [(cws_pmd_config, String)] = [
            (c, "x-foo"), (c, "permessage-deflate, permessage-deflate"), (c, "permessage-deflate, x-foo"),
            (c, "permessage-deflate; foo"), (c, "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
            (c, "permessage-deflate; server_max_window_bits"), (c, "permessage-deflate; server_max_window_bits=16"),
            (c, "permessage-deflate; client_max_window_bits"),          // a response needs a value
            (c, "permessage-deflate; client_max_window_bits=8"),        // our zlib deflater cannot
            (Self.config(window: 10), "permessage-deflate; client_max_window_bits=11"), // above our offer
            (Self.config(peerWindow: 10), "permessage-deflate"),        // asked, not answered
            (Self.config(peerWindow: 10), "permessage-deflate; server_max_window_bits=11"),
            (Self.config(peerNCT: true), "permessage-deflate"),
            (c, "permessage-deflate;"), (c, "permessage-deflate; server_max_window_bits=\"9"),
        ]
        for (cfg, response) in bad {
            #expect(Self.accept(cfg, response).0 == Self.badResponse, "\(response)")
        }
    }

    /// Whatever the two sides want, a client and a server using this code agree on the same
    /// parameters, or the server declines exactly when it cannot honour the offer.
    @Test func clientAndServerAgree() {
        var configs: [cws_pmd_config] = []
        for w: UInt8 in [9, 11, 15] {
            for pw: UInt8 in [9, 10, 13, 15] {
                for nct in [false, true] {
                    for pnct in [false, true] {
                        for shared in [false, true] {
                            configs.append(Self.config(window: w, peerWindow: pw, nct: nct, peerNCT: pnct, shared: shared))
                        }
                    }
                }
            }
        }
        for client in configs {
            let offer = Self.offer(client)
            for server in configs {
                let s = Self.negotiate(server, offer)
                let cannot = server.memory == CWS_PMD_MEMORY_SHARED && client.peer_window_bits < 15 &&
                    client.peer_window_bits < server.window_bits
                if cannot {
                    #expect(s.status == Self.declined, "\(offer)")
                    continue
                }
                #expect(s.status == Self.ok, "\(offer)")
                let (st, agreed) = Self.accept(client, s.response)
                #expect(st == Self.ok, "\(offer) -> \(s.response)")
                #expect(agreed == s.agreed, "\(offer) -> \(s.response)")
                // Each side's deflater window fits what the other side's inflater allows, and
                // neither deflater is asked for 8.
                if let a = agreed {
                    #expect(a.c <= client.window_bits && a.s <= server.window_bits)
                    #expect(a.s <= client.peer_window_bits && a.c <= server.peer_window_bits)
                    #expect(a.s >= 9 && a.c >= 9)
                }
            }
        }
    }
}
