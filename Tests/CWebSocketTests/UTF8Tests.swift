import CWebSocket
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// UTF-8 validation (RFC 3629 §4, RFC 6455 §8.1): every available kernel against the REFERENCE
// kernel and against Swift's own decoder, which is an independent oracle.

/// xorshift64* with a fixed seed per test, so every failure reproduces.
private struct XorShiftStar {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next() >> 32) }
}

private let ok = CWS_OK.rawValue
private let invalid = CWS_ERR_INVALID_UTF8.rawValue

/// Every kernel this CPU can run, AUTO included (REFERENCE is the baseline, listed too).
private let availableKernels: [cws_kernel] =
    [CWS_KERNEL_AUTO, CWS_KERNEL_REFERENCE, CWS_KERNEL_WORD, CWS_KERNEL_SSE, CWS_KERNEL_AVX2, CWS_KERNEL_NEON]
        .filter { cws_utf8_kernel_available($0) }

private func kernels() -> [cws_kernel] { availableKernels }

private func name(_ k: cws_kernel) -> String { String(cString: cws_kernel_name(k)) }

private func hex(_ b: some Sequence<UInt8>) -> String {
    b.map { String($0, radix: 16, uppercase: true).count == 1 ? "0" + String($0, radix: 16, uppercase: true)
                                                             : String($0, radix: 16, uppercase: true) }
        .joined(separator: " ")
}

/// Swift's decoder: an oracle written by other people.
private func swiftAccepts(_ b: [UInt8]) -> Bool { String(validating: b, as: UTF8.self) != nil }

/// Writes the UTF-8 form of `cp` (any value up to 0x1FFFFF, surrogates too) at p; returns its length.
private func encode(_ cp: UInt32, into p: UnsafeMutablePointer<UInt8>) -> Int {
    switch cp {
    case 0..<0x80:
        p[0] = UInt8(cp)
        return 1
    case 0x80..<0x800:
        p[0] = UInt8(0xC0 | cp >> 6); p[1] = UInt8(0x80 | cp & 0x3F)
        return 2
    case 0x800..<0x10000:
        p[0] = UInt8(0xE0 | cp >> 12); p[1] = UInt8(0x80 | cp >> 6 & 0x3F); p[2] = UInt8(0x80 | cp & 0x3F)
        return 3
    default:
        p[0] = UInt8(0xF0 | cp >> 18); p[1] = UInt8(0x80 | cp >> 12 & 0x3F)
        p[2] = UInt8(0x80 | cp >> 6 & 0x3F); p[3] = UInt8(0x80 | cp & 0x3F)
        return 4
    }
}

private func encode(_ cp: UInt32) -> [UInt8] {
    var t: [UInt8] = [0, 0, 0, 0]
    let n = t.withUnsafeMutableBufferPointer { encode(cp, into: $0.baseAddress!) }
    return Array(t.prefix(n))
}

/// A random scalar whose UTF-8 form is `len` bytes long (never a surrogate).
private func randomScalar(_ rng: inout XorShiftStar, len: Int) -> UInt32 {
    switch len {
    case 1: return UInt32(rng.below(0x80))
    case 2: return 0x80 + UInt32(rng.below(0x780))
    case 3:
        let v = 0x800 + UInt32(rng.below(0xF800 - 0x800)) // 0x800..<0xF800 without the 2048 surrogates
        return v >= 0xD800 ? v + 0x800 : v
    default: return 0x10000 + UInt32(rng.below(0x100000))
    }
}

/// Random valid text of exactly `count` bytes. `asciiShare` in percent of characters.
private func randomText(_ rng: inout XorShiftStar, count: Int, asciiShare: Int = 40) -> [UInt8] {
    var out = [UInt8](repeating: 0x61, count: count)
    out.withUnsafeMutableBufferPointer { buf in
        var tmp: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        var i = 0
        while i < count {
            let len = rng.below(100) < asciiShare ? 1 : 2 + rng.below(3)
            let n = withUnsafeMutableBytes(of: &tmp) {
                encode(randomScalar(&rng, len: len), into: $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            if i + n > count { break } // the rest stays "a"
            withUnsafeBytes(of: &tmp) { t in for j in 0..<n { buf[i + j] = t[j] } }
            i += n
        }
    }
    return out
}

/// One random damage: a random byte, a flipped bit, a continuation, a lead, or a byte removed.
private func corrupt(_ text: [UInt8], _ rng: inout XorShiftStar) -> [UInt8] {
    guard !text.isEmpty else { return [rng.byte() | 0x80] }
    var t = text
    let at = rng.below(t.count)
    switch rng.below(5) {
    case 0: t[at] = rng.byte()
    case 1: t[at] ^= 1 << UInt8(rng.below(8))
    case 2: t[at] = 0x80 | rng.byte() & 0x3F
    case 3: t[at] = 0xC0 | rng.byte() & 0x3F
    default: t.remove(at: at)
    }
    return t
}

/// Collects disagreements instead of one #expect per check, so a debug run stays fast and a
/// failure prints a few readable cases.
private struct Mismatches {
    var count = 0
    var checks = 0
    var samples: [String] = []
    mutating func check(_ good: Bool, _ what: @autoclosure () -> String) {
        checks += 1
        if good { return }
        count += 1
        if samples.count < 8 { samples.append(what()) }
    }
}

/// Runs `kernel` on bytes placed `align` bytes past a 64-byte boundary.
private final class AlignedBuffer {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity + 64, alignment: 64)
    }
    deinit { base.deallocate() }
    func validate(_ k: cws_kernel, _ bytes: [UInt8], align: Int) -> Int32 {
        precondition(bytes.count + align <= capacity + 64)
        let p = base + align
        bytes.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: $0.count) } }
        return cws_utf8_validate_with(k, p, bytes.count)
    }
}

private func validate(_ k: cws_kernel, _ b: [UInt8]) -> Int32 {
    b.withUnsafeBytes { cws_utf8_validate_with(k, $0.baseAddress, $0.count) }
}

/// Compares every kernel with REFERENCE, and REFERENCE with Swift's decoder.
private func crossCheck(_ b: [UInt8], _ m: inout Mismatches, buffer: AlignedBuffer? = nil, align: Int = 0,
                        expect: Bool? = nil) {
    let ref = validate(CWS_KERNEL_REFERENCE, b)
    let swift = swiftAccepts(b)
    m.check((ref == ok) == swift, "reference=\(ref) swift=\(swift): \(hex(b))")
    if let e = expect { m.check(swift == e, "expected \(e): \(hex(b))") }
    for k in kernels() {
        let r = buffer.map { $0.validate(k, b, align: align) } ?? validate(k, b)
        m.check(r == ref, "\(name(k)) says \(r), reference \(ref) (align \(align)): \(hex(b))")
    }
}

/// True when `prefix` can still be continued into valid UTF-8 (Swift's decoder decides): it is
/// valid, or valid after appending 1-3 continuation bytes. The first appended byte is tried as
/// 80, 90 and A0 because some lead byte accepts each of the second-byte ranges (RFC 3629 §4).
private func extendable(_ prefix: [UInt8]) -> Bool {
    if swiftAccepts(prefix) { return true }
    for first: UInt8 in [0x80, 0x90, 0xA0] {
        var t = prefix + [first]
        for _ in 0..<3 {
            if swiftAccepts(t) { return true }
            t.append(0x80)
        }
    }
    return false
}

private func feed(_ k: cws_kernel, _ s: inout cws_utf8_stream, _ b: ArraySlice<UInt8>) -> Int32 {
    b.withUnsafeBytes { cws_utf8_stream_feed_with(k, &s, $0.baseAddress, $0.count) }
}

/// Masks as RFC 6455 §5.3 says, byte by byte: octet i XOR key[(phase + i) mod 4].
private func mask(_ b: [UInt8], _ key: [UInt8], phase: Int) -> [UInt8] {
    var out = b
    for i in out.indices { out[i] ^= key[(phase + i) & 3] }
    return out
}

/// Short texts for the streaming tests: the RFC edge cases, inside ASCII and alone, plus random
/// valid and damaged texts.
private func streamCorpus() -> [[UInt8]] {
    var rng = XorShiftStar(seed: 0x5EED_0003)
    var out: [[UInt8]] = []
    let edges: [[UInt8]] = [
        [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xC3, 0xA9], [0xE0, 0x80], [0xED, 0xA0], [0xF0, 0x80],
        [0xF4, 0x90], [0xC0], [0xC1], [0xF5], [0xF8], [0xFF], [0x80], [0xBF], [0xE2, 0x82], [0xF0, 0x9F, 0x98],
        [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
        [0xC2, 0x80, 0x80], [0xE2, 0x82, 0xAC, 0xAC], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xF0, 0x80, 0x80, 0x80],
    ]
    for e in edges {
        out.append(e)
        out.append(Array("ab".utf8) + e + Array("cd".utf8))
        out.append(e + [0xC3, 0xA9] + e)
    }
    for n in [5, 17, 33, 40, 63, 64, 65, 70] {
        let t = randomText(&rng, count: n)
        out.append(t)
        out.append(corrupt(t, &rng))
        out.append(Array(t.dropLast())) // possibly cut inside a sequence
    }
    return out
}

@Suite struct UTF8Tests {
    @Test func kernelAvailabilityAndFallback() {
        #expect(cws_utf8_kernel_available(CWS_KERNEL_AUTO))
        #expect(cws_utf8_kernel_available(CWS_KERNEL_REFERENCE))
        #expect(cws_utf8_kernel_available(CWS_KERNEL_WORD))
        let selected = cws_utf8_kernel_selected()
        #expect(selected != CWS_KERNEL_AUTO && cws_utf8_kernel_available(selected))
        #if arch(x86_64)
        #expect(!cws_utf8_kernel_available(CWS_KERNEL_NEON))
        #expect(cws_utf8_kernel_available(CWS_KERNEL_SSE)) // every x86-64 CPU we target has SSE4.1
        if cws_utf8_kernel_available(CWS_KERNEL_AVX2) { #expect(selected == CWS_KERNEL_AVX2) }
        #elseif arch(arm64)
        #expect(cws_utf8_kernel_available(CWS_KERNEL_NEON) && selected == CWS_KERNEL_NEON)
        #endif
        // An unavailable kernel (or a value outside the enum) falls back to the reference.
        let unknown = cws_kernel(rawValue: 99)
        #expect(!cws_utf8_kernel_available(unknown))
        #expect(validate(unknown, [0x41, 0xE2, 0x82, 0xAC]) == ok)
        #expect(validate(unknown, [0x41, 0xED, 0xA0, 0x80]) == invalid)
        // Length 0 with a NULL buffer is valid everywhere.
        for k in kernels() { #expect(cws_utf8_validate_with(k, nil, 0) == ok) }
        #expect(cws_utf8_validate(nil, 0) == ok)
    }

    /// The table of RFC 3629 §4 at its edges, each alone and inside ASCII across 16/32/64-byte
    /// block boundaries. The expected verdicts are the RFC's.
    @Test func rfc3629Boundaries() {
        let valid: [[UInt8]] = [
            [0x00], [0x7F],                         // U+0000, U+007F
            [0xC2, 0x80], [0xDF, 0xBF],             // U+0080, U+07FF
            [0xE0, 0xA0, 0x80], [0xEF, 0xBF, 0xBF], // U+0800, U+FFFF
            [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], // U+D7FF, U+E000: the surrogates' neighbours
            [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], // U+10000, U+10FFFF
            [0xEF, 0xBB, 0xBF],                     // U+FEFF (BOM) is an ordinary character
        ]
        let bad: [[UInt8]] = [
            [0xC0, 0x80], [0xC0, 0xAF], [0xC1, 0xBF],                  // overlong 2-byte
            [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],                    // overlong 3-byte
            [0xF0, 0x80, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF],        // overlong 4-byte
            [0xED, 0xA0, 0x80], [0xED, 0xAF, 0xBF], [0xED, 0xB0, 0x80], [0xED, 0xBF, 0xBF], // surrogates
            [0xF4, 0x90, 0x80, 0x80], [0xF7, 0xBF, 0xBF, 0xBF],        // above U+10FFFF
            [0xF5, 0x80, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFC, 0x84, 0x80, 0x80, 0x80, 0x80],
            [0xFE], [0xFF], [0x80], [0xBF], [0xC2], [0xE0, 0xA0], [0xF0, 0x90, 0x80], // stray, truncated
            [0xC2, 0x41], [0xE2, 0x82, 0x41], [0xF0, 0x9F, 0x98, 0x41], [0xC2, 0xC2, 0x80],
            [0xE2, 0x82, 0xAC, 0xAC],                                  // one continuation too many
        ]
        let buffer = AlignedBuffer(capacity: 256)
        var m = Mismatches()
        for (vectors, expected) in [(valid, true), (bad, false)] {
            for v in vectors {
                crossCheck(v, &m, expect: expected)
                for offset in [0, 1, 13, 14, 15, 16, 29, 30, 31, 32, 33, 61, 62, 63, 64, 65, 125, 126, 127, 128] {
                    let text = [UInt8](repeating: 0x41, count: offset) + v + [UInt8](repeating: 0x42, count: 70)
                    crossCheck(text, &m, buffer: buffer, align: offset & 7, expect: expected)
                    crossCheck([UInt8](repeating: 0x41, count: offset) + v, &m, expect: expected) // at the end
                }
            }
        }
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }

    /// Every length 0-300 at every start alignment 0-63: random valid text and one damaged copy.
    @Test func allLengthsAllAlignments() {
        var rng = XorShiftStar(seed: 0x5EED_0001)
        let buffer = AlignedBuffer(capacity: 300 + 64)
        var m = Mismatches()
        var sawInvalid = 0
        for len in 0...300 {
            let text = randomText(&rng, count: len, asciiShare: [0, 40, 90][len % 3])
            #expect(swiftAccepts(text))
            for align in 0..<64 {
                crossCheck(text, &m, buffer: buffer, align: align, expect: true)
                let bad = corrupt(text, &rng)
                if !swiftAccepts(bad) { sawInvalid += 1 }
                crossCheck(bad, &m, buffer: buffer, align: align)
            }
        }
        #expect(sawInvalid > 10_000) // most damage is detectable; the loop really tested errors
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }

    /// A few long texts, up to 1 MiB: valid, damaged once, and cut inside the last character.
    @Test func longRandomTexts() {
        var rng = XorShiftStar(seed: 0x5EED_0002)
        var m = Mismatches()
        for (i, len) in [1 << 20, 1 + rng.below(1 << 20), 1 + rng.below(1 << 16)].enumerated() {
            var text = randomText(&rng, count: len, asciiShare: [97, 40, 0][i])
            crossCheck(text, &m, expect: true)
            text[rng.below(len)] = 0xFF
            crossCheck(text, &m, expect: false)
            let cut = randomText(&rng, count: len - 1, asciiShare: 99) + [0xE2]
            crossCheck(cut, &m, expect: false)
        }
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }

    /// Each byte of each 1-4 byte form truncated or replaced, with the form inside a long ASCII
    /// run at every offset around the 16/32/64/128-byte block boundaries.
    @Test func adversarialPositions() {
        let forms: [[UInt8]] = [
            [0x24], [0xC2, 0xA2], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xE2, 0x82, 0xAC], [0xED, 0x9F, 0xBF],
            [0xEE, 0x80, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF0, 0x9F, 0x98, 0x80],
            [0xF3, 0xBF, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF],
        ]
        let replacements: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                     0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]
        let offsets = Array(0..<72) + Array(120..<136)
        var m = Mismatches()
        for form in forms {
            for offset in offsets {
                let head = [UInt8](repeating: 0x61, count: offset)
                let tail = [UInt8](repeating: 0x62, count: 150 - offset)
                crossCheck(head + form + tail, &m, expect: true)
                for cut in 1..<form.count { // truncated: followed by ASCII, or at the very end
                    crossCheck(head + form.prefix(cut) + tail, &m, expect: false)
                    crossCheck(head + form.prefix(cut), &m, expect: false)
                }
                for pos in form.indices { // replaced: the verdict comes from the oracles
                    for r in replacements where r != form[pos] {
                        var f = form
                        f[pos] = r
                        crossCheck(head + f + tail, &m)
                    }
                }
            }
        }
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }

    /// All two-byte inputs with a non-ASCII first byte, and structured three- and four-byte
    /// inputs, behind 15 ASCII bytes (so they straddle the first 16-byte block) and at the end.
    @Test func structuredSequences() {
        var m = Mismatches()
        let head = [UInt8](repeating: 0x20, count: 15)
        for a in 0x80...0xFF {
            for b in 0...0xFF {
                let pair: [UInt8] = [UInt8(a), UInt8(b)]
                crossCheck(head + pair, &m)
                crossCheck(head + pair + [0x20, 0x20, 0x20], &m)
            }
        }
        let s: [UInt8] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF]
        for a in 0xE0...0xEF { for b in s { for c in s { crossCheck(head + [UInt8(a), b, c, 0x20], &m) } } }
        let s4: [UInt8] = [0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0]
        for a in 0xF0...0xF7 {
            for b in s4 { for c in s4 { for d in s4 { crossCheck(head + [UInt8(a), b, c, d], &m) } } }
        }
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }

    /// Every scalar value in one text (valid), every surrogate alone (invalid), every overlong
    /// 2- and 3-byte form and a sample of overlong 4-byte forms and of values above U+10FFFF.
    @Test func everyScalar() {
        var all = [UInt8](repeating: 0, count: 0x110000 * 4)
        var n = 0
        all.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            for cp in UInt32(0)...0x10FFFF where !(0xD800...0xDFFF).contains(cp) { n += encode(cp, into: p + n) }
        }
        all.removeLast(all.count - n)
        var m = Mismatches()
        m.check(swiftAccepts(all), "Swift rejects the scalar list")
        for k in kernels() + [CWS_KERNEL_REFERENCE] {
            m.check(validate(k, all) == ok, "\(name(k)) rejects a valid scalar")
        }
        var rng = XorShiftStar(seed: 0x5EED_0004)
        var bad: [[UInt8]] = (0xD800...0xDFFF).map { encode(UInt32($0)) }
        for cp in UInt32(0)..<0x80 { bad.append([0xC0 | UInt8(cp >> 6), 0x80 | UInt8(cp & 0x3F)]) }
        for cp in UInt32(0)..<0x800 { bad.append([0xE0, 0x80 | UInt8(cp >> 6), 0x80 | UInt8(cp & 0x3F)]) }
        for _ in 0..<2048 {
            let cp = UInt32(rng.below(0x10000))
            bad.append([0xF0, 0x80 | UInt8(cp >> 12), 0x80 | UInt8(cp >> 6 & 0x3F), 0x80 | UInt8(cp & 0x3F)])
            bad.append(encode(0x110000 + UInt32(rng.below(0x1FFFFF - 0x110000))))
        }
        for b in bad { crossCheck(Array("12345678901234".utf8) + b + [0x21], &m, expect: false) }
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }

    /// The fail-fast cases of the streaming API: an error at the feed that brings the bad byte,
    /// never later; a valid incomplete prefix is an error only at finish.
    @Test func streamFailsFast() {
        let failNow: [[UInt8]] = [
            [0xE0, 0x80], [0xED, 0xA0], [0xF0, 0x80], [0xF4, 0x90], [0xC0], [0xC1], [0x80], [0xBF],
            [0xE0, 0x9F], [0xF0, 0x8F], [0xF4, 0xBF], [0xC2, 0xC2], [0xE2, 0x41],
        ] + (0xF5...0xFF).map { [UInt8($0)] }
        let incomplete: [[UInt8]] = [[0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xC3], [0xF4, 0x8F, 0xBF], [0xED, 0x9F], [0xE0]]
        for k in kernels() {
            for v in failNow {
                for head in [[], Array("abc".utf8), [0xC3, 0xA9], Array(repeating: UInt8(0x61), count: 70)] {
                    var s = cws_utf8_stream()
                    cws_utf8_stream_init(&s)
                    #expect(feed(k, &s, head[...]) == ok)
                    #expect(feed(k, &s, (head + v)[head.count...]) == invalid, "\(name(k)) \(hex(head + v))")
                    // The stream stays failed, whatever comes next.
                    #expect(feed(k, &s, Array("valid".utf8)[...]) == invalid)
                    #expect(feed(k, &s, ArraySlice<UInt8>()) == invalid)
                    #expect(cws_utf8_stream_finish(&s) == invalid)
                    cws_utf8_stream_init(&s) // until it is started again
                    #expect(feed(k, &s, Array("x".utf8)[...]) == ok && cws_utf8_stream_finish(&s) == ok)
                }
                // The same bytes split after the first byte: the second feed fails.
                if v.count == 2 {
                    var s = cws_utf8_stream()
                    cws_utf8_stream_init(&s)
                    #expect(feed(k, &s, v[..<1]) == ok)
                    #expect(feed(k, &s, v[1...]) == invalid, "\(name(k)) \(hex(v)) split")
                }
            }
            for v in incomplete {
                var s = cws_utf8_stream()
                cws_utf8_stream_init(&s)
                #expect(feed(k, &s, (Array("abc".utf8) + v)[...]) == ok, "\(name(k)) \(hex(v))")
                #expect(cws_utf8_stream_finish(&s) == invalid)
                // Completing it makes the text valid again.
                var done = v
                while !swiftAccepts(done) { done.append(done.count == 1 && v[0] == 0xE0 ? 0xA0 : 0x80) }
                #expect(feed(k, &s, done[v.count...]) == ok && cws_utf8_stream_finish(&s) == ok, "\(hex(done))")
            }
        }
    }

    /// Every split point, 1-byte pieces, and random splits: each feed fails exactly when the bytes
    /// so far can no longer start valid UTF-8 (per Swift's decoder), and finish gives the one-shot
    /// verdict.
    @Test func streamSplitsMatchOneShot() {
        var m = Mismatches()
        var rng = XorShiftStar(seed: 0x5EED_0005)
        for text in streamCorpus() {
            let whole = swiftAccepts(text)
            let ext = (0...text.count).map { extendable(Array(text.prefix($0))) }
            for k in kernels() {
                for cut in 0...text.count {
                    var s = cws_utf8_stream()
                    cws_utf8_stream_init(&s)
                    let a = feed(k, &s, text[..<cut])
                    m.check((a == ok) == ext[cut], "\(name(k)) first piece \(cut): \(a) of \(hex(text))")
                    if a != ok { continue }
                    let b = feed(k, &s, text[cut...])
                    m.check((b == ok) == ext[text.count], "\(name(k)) second piece at \(cut): \(b) of \(hex(text))")
                    if b != ok { continue }
                    m.check((cws_utf8_stream_finish(&s) == ok) == whole, "\(name(k)) finish, split \(cut): \(hex(text))")
                }
                var s = cws_utf8_stream()
                cws_utf8_stream_init(&s)
                var failed = false
                for i in text.indices {
                    let r = feed(k, &s, text[i...i])
                    m.check((r == ok) == (ext[i + 1] && !failed), "\(name(k)) byte \(i): \(r) of \(hex(text))")
                    failed = failed || r != ok
                }
                m.check((cws_utf8_stream_finish(&s) == ok) == whole, "\(name(k)) 1-byte finish: \(hex(text))")
            }
        }
        // Longer texts with random splits: only the verdict is compared.
        for round in 0..<24 {
            let text = randomText(&rng, count: 200 + rng.below(3000), asciiShare: [0, 50, 95][round % 3])
            let t = round % 2 == 0 ? text : corrupt(text, &rng)
            let expected = validate(CWS_KERNEL_REFERENCE, t) == ok
            for k in kernels() {
                var s = cws_utf8_stream()
                cws_utf8_stream_init(&s)
                var pos = 0, r = ok
                while pos < t.count && r == ok {
                    let n = rng.below(4) == 0 ? 1 : 1 + rng.below(min(300, t.count - pos))
                    let end = min(t.count, pos + n)
                    r = feed(k, &s, t[pos..<end])
                    pos = end
                }
                if r == ok { r = cws_utf8_stream_finish(&s) }
                m.check((r == ok) == expected, "\(name(k)) random splits of \(t.count) bytes: \(r)")
            }
        }
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }

    /// Unmask + stream validation equals masking byte by byte (RFC 6455 §5.3) and then validating
    /// with REFERENCE: same verdict, and on success the same bytes. All kernels, lengths 0-300,
    /// phases 0-3, in one piece and in two.
    @Test func fusedUnmaskMatchesMaskThenValidate() {
        var rng = XorShiftStar(seed: 0x5EED_0006)
        var m = Mismatches()
        for len in 0...300 {
            let valid = randomText(&rng, count: len, asciiShare: [0, 50, 95][len % 3])
            for phase in 0..<4 {
                let text = phase == 3 ? corrupt(valid, &rng) : valid
                let key: [UInt8] = (0..<4).map { _ in rng.byte() }
                let masked = mask(text, key, phase: phase)
                let expected = validate(CWS_KERNEL_REFERENCE, text)
                let cut = rng.below(text.count + 1)
                for k in kernels() {
                    for pieces in [[0, text.count], [0, cut, text.count]] {
                        var buf = masked
                        var s = cws_utf8_stream()
                        cws_utf8_stream_init(&s)
                        var r = ok
                        for j in 0..<(pieces.count - 1) where r == ok {
                            let (a, b) = (pieces[j], pieces[j + 1])
                            r = buf.withUnsafeMutableBytes { p in
                                key.withUnsafeBytes { kp in
                                    cws_unmask_utf8_stream_with(k, &s, p.baseAddress.map { $0 + a }, b - a, kp.baseAddress,
                                                                UInt32(phase + a))
                                }
                            }
                        }
                        if r == ok { r = cws_utf8_stream_finish(&s) }
                        m.check(r == expected, "\(name(k)) len \(len) phase \(phase) pieces \(pieces): \(r) vs \(expected)")
                        if r == ok { m.check(buf == text, "\(name(k)) len \(len) phase \(phase): bytes differ") }
                    }
                }
            }
        }
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }

    /// Inputs that end right before an inaccessible page: a read (or, for the fused decode, a
    /// write) past the end would crash.
    @Test func noAccessPastTheEnd() throws {
        let page = Int(getpagesize())
        guard let region = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              region != UnsafeMutableRawPointer(bitPattern: -1) else {
            Issue.record("mmap failed")
            return
        }
        defer { munmap(region, 2 * page) }
        try #require(mprotect(region + page, page, PROT_NONE) == 0)
        var rng = XorShiftStar(seed: 0x5EED_0007)
        var m = Mismatches()
        let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        for len in 0...300 {
            let text = randomText(&rng, count: len, asciiShare: 60)
            let p = region + page - len
            for k in kernels() {
                text.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: len) } }
                m.check(cws_utf8_validate_with(k, p, len) == ok, "\(name(k)) validate \(len)")
                var s = cws_utf8_stream()
                cws_utf8_stream_init(&s)
                m.check(cws_utf8_stream_feed_with(k, &s, p, len) == ok, "\(name(k)) feed \(len)")
                mask(text, key, phase: 1).withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: len) } }
                cws_utf8_stream_init(&s)
                let r = key.withUnsafeBytes { cws_unmask_utf8_stream_with(k, &s, p, len, $0.baseAddress, 1) }
                m.check(r == ok && Array(UnsafeRawBufferPointer(start: p, count: len)) == text, "\(name(k)) fused \(len)")
            }
        }
        #expect(m.count == 0, "\(m.count) of \(m.checks): \(m.samples)")
    }
}
