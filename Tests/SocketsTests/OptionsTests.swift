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
        #expect(field(Options(compression: .default)) == nil)
        #expect(Options().compression == nil) // off by default
        // The middleware refuses them when the route is set up, not per request.
        #expect(throws: OptionsError.self) { try Sockets.messages(Options(recvChannelBuffer: 0)) }
        #expect(throws: OptionsError.self) { try Sockets.json(String.self, Options(allowedOrigin: "[")) }
    }
}
