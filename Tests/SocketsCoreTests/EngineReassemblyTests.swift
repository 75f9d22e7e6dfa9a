import NIOCore
import Testing

@testable import SocketsCore

/// The engine's reassembly handover: a message that does not arrive whole in one read is
/// reassembled by the C engine straight into the storage of a ByteBuffer, and that ByteBuffer is
/// the message (no second copy).
@Suite struct EngineReassemblyTests {
    static let key: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]

    /// A masked frame, as a client sends it.
    static func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0) -> [UInt8] {
        var b: [UInt8] = [(fin ? 0x80 : 0) | rsv | opcode]
        if payload.count < 126 {
            b.append(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            b.append(0x80 | 126)
            b += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            b.append(0x80 | 127)
            b += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        b += key
        b += payload.enumerated().map { $0.element ^ key[$0.offset & 3] }
        return b
    }

    /// Random bytes from a fixed seed.
    static func bytes(_ n: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15, alphabet: UInt8 = 0) -> [UInt8] {
        var s = seed
        return (0..<n).map { _ in
            s ^= s << 13
            s ^= s >> 7
            s ^= s << 17
            return alphabet == 0 ? UInt8(truncatingIfNeeded: s) : UInt8(ascii: "a") + UInt8(s % UInt64(alphabet))
        }
    }

    /// Feeds `stream` in reads of `read` bytes (each its own copy, as the socket would give them)
    /// and returns the steps, in order, up to a failure.
    static func parse(_ engine: Engine, _ stream: [UInt8], read: Int) -> [Engine.Step] {
        var steps: [Engine.Step] = []
        var at = 0
        var failed = false
        while at < stream.count, !failed {
            var chunk = Array(stream[at..<min(at + read, stream.count)])
            chunk.withUnsafeMutableBytes { raw in
                var off = 0
                while true {
                    let (step, used) = engine.parse(UnsafeMutableRawBufferPointer(rebasing: raw[off...]))
                    if case .needMore = step { break }
                    steps.append(step)
                    if case .failure = step { failed = true; break }
                    off += used
                    if off == raw.count { break }
                }
            }
            at += read
        }
        return steps
    }

    /// The first byte of the buffer's readable bytes.
    static func base(_ b: ByteBuffer) -> UnsafeRawPointer? { b.withUnsafeReadableBytes { $0.baseAddress } }

    @Test func aFrameSplitAcrossManyReadsIsTheBufferTheEngineWrote() throws {
        let engine = try Engine(maxMessageSize: 2 << 20, maxFrameSize: 2 << 20)
        let message = Self.bytes(1 << 20)
        // 64 KiB reads: the 1 MiB frame arrives in 17 pieces, then a small one whole.
        let steps = Self.parse(engine, Self.frame(0x2, message) + Self.frame(0x1, Array("hi".utf8)), read: 65536)
        #expect(steps.count == 2)
        guard case .message(let text, let payload) = steps.first else { Issue.record("expected a message, got \(steps)"); return }
        #expect(!text && payload.readableBytes == message.count)
        #expect(payload.readableBytesView.elementsEqual(message))
        // No second copy: the message is the storage the engine grew and wrote into.
        #expect(engine.handedOver == 1 && engine.copied == 0)
        #expect(Self.base(payload) == UnsafeRawPointer(engine.lastBase))
        guard case .messageInPlace(true, _, 2) = steps.last else { Issue.record("expected hi in place, got \(steps)"); return }
    }

    @Test func aFragmentedMessageIsTheBufferTheEngineWrote() throws {
        let engine = try Engine(maxMessageSize: 1 << 20, maxFrameSize: 1 << 20)
        let message = Self.bytes(100_000, alphabet: 26)
        var stream: [UInt8] = []
        for i in 0..<10 {
            stream += Self.frame(i == 0 ? 0x1 : 0x0, Array(message[i * 10_000..<(i + 1) * 10_000]), fin: i == 9)
            if i == 4 { stream += Self.frame(0x9, [1, 2, 3]) } // a ping between fragments
        }
        for read in [stream.count, 1000, 7] {
            let before = engine.handedOver
            let steps = Self.parse(engine, stream, read: read)
            #expect(steps.count == 2)
            guard case .ping = steps.first, case .message(let text, let payload) = steps.last else {
                Issue.record("expected a ping and a message, got \(steps)")
                continue
            }
            #expect(text && payload.readableBytesView.elementsEqual(message))
            #expect(engine.handedOver == before + 1 && engine.copied == 0)
            #expect(Self.base(payload) == UnsafeRawPointer(engine.lastBase))
        }
    }

    @Test func anInflatedMessageIsTheBufferTheEngineWrote() throws {
        let settings = CompressionSettings.default
        let agreement = try #require(CompressionAgreement.negotiate(offers: ["permessage-deflate"], settings: settings))
        let deflater = try #require(Deflater(settings: settings, agreement: agreement, role: .client))
        let engine = try Engine(maxMessageSize: 2 << 20, maxFrameSize: 2 << 20, compression: agreement)
        // 1 MiB of text from 4 letters: it compresses, and inflates in many steps.
        let message = Self.bytes(1 << 20, alphabet: 4)
        let (compressed, isCompressed) = try #require(deflater.compress(ByteBuffer(bytes: message), allocator: ByteBufferAllocator()))
        #expect(isCompressed && compressed.readableBytes < message.count / 2)
        let stream = Self.frame(0x1, Array(compressed.readableBytesView), rsv: 0x40)
        for read in [stream.count, 65536] {
            let before = engine.handedOver
            let steps = Self.parse(engine, stream, read: read)
            #expect(steps.count == 1)
            guard case .message(let text, let payload) = steps.first else { Issue.record("expected a message, got \(steps)"); continue }
            #expect(text && payload.readableBytesView.elementsEqual(message))
            #expect(engine.handedOver == before + 1 && engine.copied == 0)
            #expect(Self.base(payload) == UnsafeRawPointer(engine.lastBase))
        }
    }

    @Test func aSmallReassembledMessageIsCopiedCompactly() throws {
        let engine = try Engine(maxMessageSize: 1 << 20, maxFrameSize: 1 << 20)
        let message = Self.bytes(100)
        // Split across two reads: reassembled in the engine's first buffer (1 KiB).
        let steps = Self.parse(engine, Self.frame(0x2, message), read: 50)
        guard steps.count == 1, case .message(false, let payload) = steps[0] else { Issue.record("expected a message, got \(steps)"); return }
        #expect(payload.readableBytesView.elementsEqual(message))
        #expect(engine.copied == 1 && engine.handedOver == 0)
        #expect(payload.capacity < 1024 && Self.base(payload) != UnsafeRawPointer(engine.lastBase))
    }

    @Test func aMessageCutByAnErrorOrByTheEndIsNotDelivered() throws {
        // A protocol error in the middle of a fragmented message: a failure, and nothing handed
        // over (the engine frees the buffer it owns, here or when it is freed).
        let engine = try Engine(maxMessageSize: 1 << 20, maxFrameSize: 1 << 20)
        let part = Self.bytes(5000)
        let stream = Self.frame(0x2, part, fin: false) + Self.frame(0x2, part)
        let steps = Self.parse(engine, stream, read: 1000)
        guard steps.count == 1, case .failure(let code, _) = steps[0] else { Issue.record("expected a failure, got \(steps)"); return }
        #expect(code == 1002 && engine.handedOver == 0 && engine.copied == 0)
        // After a message handed over, a second one cut by the end of the input stays the
        // engine's; the first is intact once the engine is gone.
        var kept: ByteBuffer?
        do {
            let engine = try Engine(maxMessageSize: 1 << 20, maxFrameSize: 1 << 20)
            let cut = Self.frame(0x2, part)
            let steps = Self.parse(engine, Self.frame(0x2, part) + cut[..<3000], read: 1000)
            guard steps.count == 1, case .message(false, let payload) = steps[0] else { Issue.record("expected a message, got \(steps)"); return }
            kept = payload
            #expect(engine.handedOver == 1)
        }
        #expect(kept?.readableBytesView.elementsEqual(part) == true)
    }
}
