import Sockets
import Testing

@Suite struct OptionsTests {
    @Test func defaultsAreTheReferences() {
        let o = Options()
        #expect(o.logLevel == .info)
        #expect(o.skipLogging == false)
        #expect(o.writeWait == .seconds(60))
        #expect(o.pongWait == .seconds(60))
        #expect(o.pingPeriod == .seconds(48))
        #expect(o.maxMessageSize == 65536)
        #expect(o.sendChannelBuffer == 10)
        #expect(o.recvChannelBuffer == 10)
        #expect(o.allowedOrigin == "https?://{{host}}$")
        #expect(o.effectiveMaxFrameSize == 65536)
        #expect(o.allowMissingOrigin == false && o.allowAnyOrigin == false)
        #expect(o.subprotocols.isEmpty)
        #expect(Options.LogLevel.error.rawValue == 0 && Options.LogLevel.debug.rawValue == 3)
        #expect(throws: Never.self) { try o.validate() }
    }

    @Test func optionsGivenInPartKeepTheRestAtDefaults() {
        let o = Options(maxMessageSize: 1024, recvChannelBuffer: 3)
        #expect(o.maxMessageSize == 1024 && o.recvChannelBuffer == 3)
        #expect(o.sendChannelBuffer == 10 && o.pingPeriod == .seconds(48) && o.allowedOrigin == "https?://{{host}}$")
        #expect(o.effectiveMaxFrameSize == 1024)
    }

    @Test func inconsistentOptionsNameTheField() {
        func field(_ o: Options) -> String? {
            do { try o.validate(); return nil } catch { return error.field }
        }
        #expect(field(Options(pongWait: .seconds(10), pingPeriod: .seconds(10))) == "pingPeriod")
        #expect(field(Options(writeWait: .seconds(5), pongWait: .seconds(60), pingPeriod: .seconds(10))) == "pingPeriod")
        // writeWait zero: writes never time out, and pingPeriod need not be shorter than it.
        #expect(field(Options(writeWait: .zero, pongWait: .seconds(60), pingPeriod: .seconds(10))) == nil)
        #expect(field(Options(maxMessageSize: 0)) == "maxMessageSize")
        #expect(field(Options(maxFrameSize: 0)) == "maxFrameSize")
        #expect(field(Options(sendChannelBuffer: 0)) == "sendChannelBuffer")
        #expect(field(Options(recvChannelBuffer: 0)) == "recvChannelBuffer")
        #expect(field(Options(allowedOrigin: "https?://(")) == "allowedOrigin")
        #expect(field(Options(closeTimeout: .zero)) == "closeTimeout")
        #expect(field(Options(subprotocols: ["chat v1"])) == "subprotocols")
        #expect(field(Options(compression: .init(windowBits: 8))) == "compression.windowBits")
        #expect(field(Options(compression: .init(peerWindowBits: 16))) == "compression.peerWindowBits")
        #expect(field(Options(compression: .init(level: 10))) == "compression.level")
        #expect(field(Options(compression: .init(memLevel: 10))) == "compression.memLevel")
        #expect(field(Options(compression: .shared)) == nil)
        #expect(field(Options(compression: .dedicated())) == nil)
        #expect(field(Options(compression: .default)) == nil)
        #expect(Options().compression == nil) // off by default
        // The middleware refuses them when the route is set up, not per request.
        #expect(throws: OptionsError.self) { try Sockets.messages(Options(recvChannelBuffer: 0)) }
        #expect(throws: OptionsError.self) { try Sockets.json(String.self, Options(allowedOrigin: "[")) }
    }

    /// Dedicated modes named by memory: each size's window and memLevel, zlib 1.2.13's allocation
    /// for it (counted by Benchmarks/zlib-sizes.c), each name that allocation rounded to KiB, and
    /// the settings they make.
    @Test func compressionModesNamedByMemory() {
        typealias C = CompressionSettings.Compressor
        typealias D = CompressionSettings.Decompressor
        #expect(C.allCases.map(\.windowBits) == [9, 10, 11, 12, 13, 14, 15])
        #expect(C.allCases.map(\.memLevel) == [2, 3, 4, 5, 6, 7, 8])
        #expect(C.allCases.map(\.bytes) == [10_048, 14_144, 22_336, 38_720, 71_488, 137_024, 268_096])
        #expect(D.allCases.map(\.windowBits) == [10, 11, 12, 13, 14, 15])
        #expect(D.allCases.map(\.bytes) == [8_184, 9_208, 11_256, 15_352, 23_544, 39_928])
        func name(_ bytes: Int) -> String {
            let kib = (Double(bytes) / 1024).rounded()
            return "kb\(Int(kib))"
        }
        for c in C.allCases { #expect("\(c)" == name(c.bytes)) }
        for d in D.allCases { #expect("\(d)" == name(d.bytes)) }
        // memLevel 0: the deflater follows the window agreed (windowBits - 7), also when a client
        // asks for a smaller one.
        #expect(CompressionSettings.dedicated(compressor: .kb22, decompressor: .kb9)
                == CompressionSettings(windowBits: 11, peerWindowBits: 11))
        #expect(CompressionSettings.dedicated(compressor: .kb262, decompressor: .kb39, level: 6, threshold: 0)
                == CompressionSettings(windowBits: 15, peerWindowBits: 15, level: 6, threshold: 0))
        #expect(CompressionSettings.shared == CompressionSettings(memory: .shared))
    }
}
