public import CoreMetrics
import NIOConcurrencyHelpers

/// The connection metrics, reported through swift-metrics: every handle is made once, when this
/// value is made (the per-close-code and per-status counters once per code), so nothing is built
/// per message; message and byte counts are added once per read and once per flush, not per
/// frame.
///
/// | name | kind | dimensions | what |
/// | --- | --- | --- | --- |
/// | `sockets.connections.open` | meter | | connections open now (WebSocket, after the handshake) |
/// | `sockets.handshakes.accepted` | counter | | upgrades answered 101 |
/// | `sockets.handshakes.refused` | counter | `status` | upgrades refused, by HTTP status |
/// | `sockets.messages.in` / `.out` | counter | | data messages received / sent |
/// | `sockets.bytes.in` / `.out` | counter | | their payload bytes (received inflated; sent before compression) |
/// | `sockets.close.received` / `.sent` | counter | `code` | close frames, by close code (1005: none) |
/// | `sockets.pings.unanswered` | counter | | connections closed because the peer sent nothing for `pongWait` |
/// | `sockets.messages.dropped` | counter | | sends dropped by the `.drop` backpressure policy |
/// | `sockets.deflate.bytes.before` / `.after` | counter | | payload bytes of sent messages before / after permessage-deflate |
///
/// The labels start with the prefix given to ``init(factory:prefix:)`` (default `sockets`).
/// ``shared`` uses the factory that `MetricsSystem.bootstrap` installed, made on first use:
/// bootstrap before the first connection.
public final class WebSocketMetrics: Sendable {
    /// The default: handles from `MetricsSystem.factory` (a no-op until the process bootstraps a
    /// backend), labelled `sockets.…`.
    public static let shared = WebSocketMetrics()

    let connectionsOpen: Meter
    let handshakesAccepted: Counter
    let messagesIn: Counter
    let messagesOut: Counter
    let bytesIn: Counter
    let bytesOut: Counter
    let pingsUnanswered: Counter
    let messagesDropped: Counter
    let deflateBefore: Counter
    let deflateAfter: Counter
    private let refused: Keyed
    private let closeReceived: Keyed
    private let closeSent: Keyed

    /// Makes every handle now.
    ///
    /// - Parameters:
    ///   - factory: where the handles come from. Default: `MetricsSystem.factory`.
    ///   - prefix: the first part of every label. Default `sockets`.
    public init(factory: any MetricsFactory = MetricsSystem.factory, prefix: String = "sockets") {
        func counter(_ name: String) -> Counter { Counter(label: "\(prefix).\(name)", factory: factory) }
        connectionsOpen = Meter(label: "\(prefix).connections.open", factory: factory)
        handshakesAccepted = counter("handshakes.accepted")
        messagesIn = counter("messages.in")
        messagesOut = counter("messages.out")
        bytesIn = counter("bytes.in")
        bytesOut = counter("bytes.out")
        pingsUnanswered = counter("pings.unanswered")
        messagesDropped = counter("messages.dropped")
        deflateBefore = counter("deflate.bytes.before")
        deflateAfter = counter("deflate.bytes.after")
        refused = Keyed(label: "\(prefix).handshakes.refused", dimension: "status", factory: factory)
        closeReceived = Keyed(label: "\(prefix).close.received", dimension: "code", factory: factory)
        closeSent = Keyed(label: "\(prefix).close.sent", dimension: "code", factory: factory)
    }

    package func opened() { connectionsOpen.increment() }
    package func closed() { connectionsOpen.decrement() }
    package func handshakeAccepted() { handshakesAccepted.increment() }
    package func received(messages: Int, bytes: Int) {
        messagesIn.increment(by: Int64(messages))
        bytesIn.increment(by: Int64(bytes))
    }
    package func sent(messages: Int, bytes: Int) {
        messagesOut.increment(by: Int64(messages))
        bytesOut.increment(by: Int64(bytes))
    }
    package func deflated(before: Int, after: Int) {
        deflateBefore.increment(by: Int64(before))
        deflateAfter.increment(by: Int64(after))
    }
    package func pingUnanswered() { pingsUnanswered.increment() }
    package func dropped() { messagesDropped.increment() }

    /// Counts a refused handshake with its status.
    package func handshakeRefused(status: Int) { refused.counter(status).increment() }
    func closeReceived(code: UInt16) { closeReceived.counter(Int(code)).increment() }
    func closeSent(code: UInt16) { closeSent.counter(Int(code)).increment() }

    /// Counters by one integer dimension (a close code, a status), each made once.
    private final class Keyed: Sendable {
        let label: String
        let dimension: String
        let factory: any MetricsFactory
        let counters = NIOLockedValueBox<[Int: Counter]>([:])

        init(label: String, dimension: String, factory: any MetricsFactory) {
            self.label = label
            self.dimension = dimension
            self.factory = factory
        }

        func counter(_ key: Int) -> Counter {
            counters.withLockedValue { c in
                if let counter = c[key] { return counter }
                let counter = Counter(label: label, dimensions: [(dimension, "\(key)")], factory: factory)
                c[key] = counter
                return counter
            }
        }
    }
}
