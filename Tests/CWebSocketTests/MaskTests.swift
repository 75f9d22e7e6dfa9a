#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CWebSocket
import Testing

/// Masking (RFC 6455 §5.3): every kernel against the byte-at-a-time reference.
@Suite struct MaskTests {
    /// The kernels under test: AUTO (the dispatch behind cws_mask) and every named kernel this CPU
    /// can run. CWS_KERNEL_REFERENCE is the oracle.
    static let kernels: [cws_kernel] =
        [CWS_KERNEL_AUTO, CWS_KERNEL_WORD, CWS_KERNEL_SSE, CWS_KERNEL_AVX2, CWS_KERNEL_NEON]
        .filter { cws_mask_kernel_available($0) }

    static func name(_ k: cws_kernel?) -> String {
        guard let k else { return "cws_mask" }
        return String(cString: cws_kernel_name(k))
    }

    static func nextPhase(_ phase: UInt32, _ length: Int) -> UInt32 { UInt32((Int(phase) + length) & 3) }

    /// Checks one case: the reference masks a copy (touching only the payload), then every kernel
    /// must produce the same whole buffer and phase, and masking again must restore the input.
    /// Returns descriptions of what went wrong.
    static func check(length: Int, align: Int, phase: UInt32, key: [UInt8], kernels: [cws_kernel?],
                      rng: inout SplitMix64) -> [String] {
        var problems: [String] = []
        let expectedPhase = nextPhase(phase, length)
        let ref = GuardedBuffer(length: length, align: align, rng: &rng)
        let refPhase = ref.mask(CWS_KERNEL_REFERENCE, key: key, phase: phase)
        let what = "len \(length) align \(align) phase \(phase) key \(key)"
        if refPhase != expectedPhase { problems.append("reference phase \(refPhase): \(what)") }
        if !ref.guardsIntact { problems.append("reference wrote outside the payload: \(what)") }
        if length >= 4 && ref.isOriginal && key != [0, 0, 0, 0] { // every key byte was used
            problems.append("reference changed nothing: \(what)")
        }

        let work = GuardedBuffer(length: length, align: align, rng: &rng)
        for k in kernels {
            work.base.copyMemory(from: ref.original, byteCount: ref.total)
            let p = work.mask(k, key: key, phase: phase)
            if p != expectedPhase { problems.append("\(name(k)) phase \(p): \(what)") }
            if !work.equals(ref) { problems.append("\(name(k)) differs from reference: \(what)") }
            _ = work.mask(k, key: key, phase: phase)
            if memcmp(work.base, ref.original, ref.total) != 0 {
                problems.append("\(name(k)) twice is not the identity: \(what)")
            }
        }
        return problems
    }

    @Test func kernelsUnderTest() {
        // The dispatcher's choice runs here, and so does everything that needs no CPU feature.
        let selected = cws_mask_kernel_selected()
        #expect(cws_mask_kernel_available(selected))
        #expect(selected != CWS_KERNEL_AUTO && selected != CWS_KERNEL_REFERENCE)
        #expect(String(cString: cws_kernel_name(selected)) != "unknown")
        for k in [CWS_KERNEL_AUTO, CWS_KERNEL_REFERENCE, CWS_KERNEL_WORD] {
            #expect(cws_mask_kernel_available(k))
        }
        #if arch(x86_64)
        #expect(cws_mask_kernel_available(CWS_KERNEL_SSE))
        #expect(!cws_mask_kernel_available(CWS_KERNEL_NEON))
        #elseif arch(arm64)
        #expect(cws_mask_kernel_available(CWS_KERNEL_NEON))
        #expect(!cws_mask_kernel_available(CWS_KERNEL_SSE))
        #expect(!cws_mask_kernel_available(CWS_KERNEL_AVX2))
        #endif
        #expect(!cws_mask_kernel_available(cws_kernel(rawValue: 99)))
    }

    /// The reference itself, against RFC 6455 §5.3 written out in Swift: octet i XOR key octet
    /// (phase + i) MOD 4.
    @Test func referenceMatchesDefinition() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        var problems: [String] = []
        for length in 0...300 {
            for phase in UInt32(0)..<4 {
                let key = rng.key()
                var data = [UInt8](repeating: 0, count: length)
                data.withUnsafeMutableBytes { rng.fill($0.baseAddress!, count: length) }
                let expected = data.indices.map { data[$0] ^ key[(Int(phase) + $0) & 3] }
                let p = key.withUnsafeBytes { k in
                    data.withUnsafeMutableBytes {
                        cws_mask_with(CWS_KERNEL_REFERENCE, $0.baseAddress, length, k.baseAddress, phase)
                    }
                }
                if data != expected || p != Self.nextPhase(phase, length) {
                    problems.append("len \(length) phase \(phase)")
                }
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(10))")
    }

    /// Every length 0...300 at every start alignment 0..<64 and every phase 0..<4.
    @Test func allShortLengthsAlignmentsAndPhases() {
        var rng = SplitMix64(seed: 0x5EED_0002)
        var problems: [String] = []
        for length in 0...300 {
            for align in 0..<64 {
                for phase in UInt32(0)..<4 {
                    problems += Self.check(length: length, align: align, phase: phase, key: rng.key(),
                                           kernels: Self.kernels, rng: &rng)
                }
            }
            if problems.count > 20 { break }
        }
        #expect(problems.isEmpty, "\(problems.prefix(20))")
    }

    /// ~40 random lengths up to 1 MiB (spread over every power of two) at random alignments and
    /// phases, plus the largest sizes themselves.
    @Test func randomLongLengths() {
        var rng = SplitMix64(seed: 0x5EED_0003)
        var lengths = [1 << 20, (1 << 20) - 1, 65536 + 3]
        for _ in 0..<37 {
            let bits = 1 + rng.below(20)
            lengths.append((1 << (bits - 1)) + rng.below(1 << (bits - 1)))
        }
        var problems: [String] = []
        for length in lengths {
            problems += Self.check(length: length, align: rng.below(64), phase: UInt32(rng.below(4)),
                                   key: rng.key(), kernels: Self.kernels, rng: &rng)
        }
        #expect(problems.isEmpty, "\(problems.prefix(20))")
    }

    /// cws_mask itself (not through cws_mask_with) at and around every size where its dispatch or a
    /// kernel changes shape: 4/8/16/32/64-byte blocks, the SSE2→AVX2 switch at 128, the 128-byte
    /// AVX2 loop, the aligned form from 1024, and a few larger sizes.
    @Test func plainMaskAroundThresholds() {
        var rng = SplitMix64(seed: 0x5EED_0004)
        let edges = [4, 8, 16, 32, 64, 96, 128, 192, 256, 512, 768, 1024, 2048, 4096, 65536]
        var sizes = Set<Int>()
        for e in edges { for d in -3...3 where e + d >= 0 { sizes.insert(e + d) } }
        var problems: [String] = []
        for length in sizes.sorted() {
            for align in 0..<64 {
                let phase = UInt32(align & 3)
                let step = length > 4096 ? 7 : 1 // the 64 KiB sizes at every 7th alignment only
                if align % step != 0 { continue }
                problems += Self.check(length: length, align: align, phase: phase, key: rng.key(),
                                       kernels: [nil, CWS_KERNEL_AUTO], rng: &rng)
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(20))")
    }

    /// Unmasking a payload in random pieces, carrying the returned phase from piece to piece, gives
    /// what unmasking it whole gives (a frame split across reads).
    @Test func chunkedWithCarriedPhaseEqualsWhole() {
        var rng = SplitMix64(seed: 0x5EED_0005)
        var problems: [String] = []
        for round in 0..<24 {
            let length = round < 12 ? 1 + rng.below(3000) : 3000 + rng.below(70000)
            let key = rng.key()
            let startPhase = UInt32(rng.below(4))
            let whole = GuardedBuffer(length: length, align: rng.below(64), rng: &rng)
            _ = whole.mask(CWS_KERNEL_REFERENCE, key: key, phase: startPhase)
            let pieces = GuardedBuffer(length: length, align: whole.align, rng: &rng)
            for k in Self.kernels + [nil] {
                pieces.base.copyMemory(from: whole.original, byteCount: whole.total)
                var phase = startPhase
                var offset = 0
                while offset < length {
                    // Mostly short pieces (including empty and 1-byte ones), sometimes long ones.
                    let cap = rng.below(4) == 0 ? 5000 : 40
                    let n = min(rng.below(cap + 1), length - offset)
                    phase = key.withUnsafeBytes { kb in
                        if let k { return cws_mask_with(k, pieces.payload + offset, n, kb.baseAddress, phase) }
                        return cws_mask(pieces.payload + offset, n, kb.baseAddress, phase)
                    }
                    offset += n
                }
                if phase != Self.nextPhase(startPhase, length) {
                    problems.append("\(Self.name(k)) final phase \(phase), round \(round)")
                }
                if !pieces.equals(whole) { problems.append("\(Self.name(k)) round \(round) len \(length)") }
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(20))")
    }

    /// RFC 6455 §5.7: "A single-frame masked text message": 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f
    /// 0x4d 0x51 0x58 contains "Hello". The key is bytes 2-5, the payload bytes 6-10.
    @Test func rfc6455MaskedHello() {
        let frame: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        let key = Array(frame[2..<6])
        for k in Self.kernels + [CWS_KERNEL_REFERENCE, nil] {
            // Whole.
            var payload = Array(frame[6...])
            let p = key.withUnsafeBytes { kb in
                payload.withUnsafeMutableBytes {
                    if let k { return cws_mask_with(k, $0.baseAddress, 5, kb.baseAddress, 0) }
                    return cws_mask($0.baseAddress, 5, kb.baseAddress, 0)
                }
            }
            #expect(payload == Array("Hello".utf8), "\(Self.name(k))")
            #expect(p == 1)
            // Split as "Hel" + "lo", the second piece starting at key byte 3.
            var head = Array(frame[6..<9]), tail = Array(frame[9...])
            let p1 = key.withUnsafeBytes { kb in
                head.withUnsafeMutableBytes { cws_mask_with(k ?? CWS_KERNEL_AUTO, $0.baseAddress, 3, kb.baseAddress, 0) }
            }
            let p2 = key.withUnsafeBytes { kb in
                tail.withUnsafeMutableBytes { cws_mask_with(k ?? CWS_KERNEL_AUTO, $0.baseAddress, 2, kb.baseAddress, p1) }
            }
            #expect(p1 == 3 && p2 == 1)
            #expect(head + tail == Array("Hello".utf8), "\(Self.name(k)) split")
        }
    }

    /// A zero key masks nothing (cws_mask skips the pass); the phase still advances. A zero length
    /// accepts a NULL buffer.
    @Test func zeroKeyAndZeroLength() {
        var rng = SplitMix64(seed: 0x5EED_0006)
        let zero: [UInt8] = [0, 0, 0, 0]
        for k in Self.kernels + [CWS_KERNEL_REFERENCE, nil] {
            for length in [1, 3, 7, 16, 64, 127, 1000, 70000] {
                let buf = GuardedBuffer(length: length, align: rng.below(64), rng: &rng)
                let phase = UInt32(rng.below(4))
                #expect(buf.mask(k, key: zero, phase: phase) == Self.nextPhase(phase, length))
                #expect(buf.isOriginal, "\(Self.name(k)) len \(length)")
            }
            let key = rng.key()
            for phase in UInt32(0)..<8 {
                let p = key.withUnsafeBytes { kb in
                    if let k { return cws_mask_with(k, nil, 0, kb.baseAddress, phase) }
                    return cws_mask(nil, 0, kb.baseAddress, phase)
                }
                #expect(p == phase & 3)
            }
        }
    }

    /// An unknown kernel falls back to the reference instead of doing nothing.
    @Test func unknownKernelFallsBackToReference() {
        var rng = SplitMix64(seed: 0x5EED_0007)
        for length in [0, 5, 33, 200, 5000] {
            let problems = Self.check(length: length, align: rng.below(64), phase: UInt32(rng.below(4)),
                                      key: rng.key(), kernels: [cws_kernel(rawValue: 99)], rng: &rng)
            #expect(problems.isEmpty, "\(problems)")
        }
    }
}

// Helpers, nested so that they cannot clash with other test files in this module.
extension MaskTests {
    /// splitmix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", 2014): a tiny
    /// generator with a fixed seed, so that every run tests the same inputs and a failure reproduces.
    struct SplitMix64 {
        var state: UInt64

        init(seed: UInt64) { state = seed }

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        /// Uniform in 0..<n (the modulo bias is irrelevant for test inputs).
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

        mutating func key() -> [UInt8] {
            let v = next()
            return [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8),
                    UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 24)]
        }

        mutating func fill(_ p: UnsafeMutableRawPointer, count: Int) {
            var i = 0
            while i + 8 <= count {
                p.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < count {
                p.storeBytes(of: UInt8(truncatingIfNeeded: next()), toByteOffset: i, as: UInt8.self)
                i += 1
            }
        }
    }

    /// A payload inside guard bytes:
    ///
    ///     [ guardSize bytes ][ align bytes ][ payload: length bytes ][ guardSize bytes ]
    ///     ^ base (64-byte aligned)          ^ payload = base + guardSize + align
    ///
    /// `original` keeps the random bytes the buffer was filled with, so that any write outside
    /// [payload, payload + length) shows up in a comparison of the whole buffer.
    final class GuardedBuffer {
        static let guardSize = 64
        let align: Int
        let length: Int
        let total: Int
        let base: UnsafeMutableRawPointer
        let original: UnsafeMutableRawPointer

        init(length: Int, align: Int, rng: inout SplitMix64) {
            self.align = align
            self.length = length
            total = 2 * Self.guardSize + align + length
            base = .allocate(byteCount: total, alignment: 64)
            original = .allocate(byteCount: total, alignment: 64)
            rng.fill(original, count: total)
            reset()
        }

        deinit {
            base.deallocate()
            original.deallocate()
        }

        var payload: UnsafeMutableRawPointer { base + Self.guardSize + align }

        /// Puts the original bytes back.
        func reset() { base.copyMemory(from: original, byteCount: total) }

        /// Whole buffer (guards included) equal to another buffer's.
        func equals(_ other: GuardedBuffer) -> Bool {
            other.total == total && memcmp(base, other.base, total) == 0
        }

        /// Whole buffer equal to the original bytes.
        var isOriginal: Bool { memcmp(base, original, total) == 0 }

        /// The guard bytes (and alignment padding) around the payload are the original ones.
        var guardsIntact: Bool {
            let before = Self.guardSize + align
            let after = before + length
            return memcmp(base, original, before) == 0
                && memcmp(base + after, original + after, total - after) == 0
        }

        /// Masks the payload with `kernel` (nil: the plain cws_mask) and returns the next phase.
        @discardableResult
        func mask(_ kernel: cws_kernel?, key: [UInt8], phase: UInt32) -> UInt32 {
            key.withUnsafeBytes { k in
                if let kernel { return cws_mask_with(kernel, payload, length, k.baseAddress, phase) }
                return cws_mask(payload, length, k.baseAddress, phase)
            }
        }
    }
}
