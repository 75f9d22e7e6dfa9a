public import NIOCore

/// What a ``Hub`` hands to its backplane, and what a backplane hands back from other instances:
/// one publish (or one presence change) as bytes, with its topic.
///
/// A backplane treats envelopes as opaque: it carries ``topic``, ``kind`` and ``payload`` to the
/// other instances unchanged, and adds its own instance id and sequence number on the way.
public struct HubEnvelope: Sendable, Equatable {
    /// What the payload is.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The kind's one-byte code, as a backplane may put it on the wire.
        public let rawValue: UInt8
        /// Wraps a code; the hub ignores envelopes of kinds it does not know.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// A text message (the payload is valid UTF-8), sent to subscribers as a text frame.
        public static let text = Kind(rawValue: 1)
        /// A binary message, sent to subscribers as a binary frame.
        public static let binary = Kind(rawValue: 2)
        /// A presence change of the hub itself (members joining and leaving topics); not for
        /// subscribers.
        public static let presence = Kind(rawValue: 3)
        /// `text`, `binary`, `presence`, or the number.
        public var description: String {
            switch self {
            case .text: "text"
            case .binary: "binary"
            case .presence: "presence"
            default: "kind \(rawValue)"
            }
        }
    }

    /// The topic it was published to.
    public var topic: String
    /// What the payload is.
    public var kind: Kind
    /// The message's bytes, exactly as subscribers receive them (the frame payload).
    public var payload: ByteBuffer

    /// An envelope.
    public init(topic: String, kind: Kind, payload: ByteBuffer) {
        self.topic = topic
        self.kind = kind
        self.payload = payload
    }
}

/// What a backplane reports to its hub while it runs.
public enum HubBackplaneEvent: Sendable {
    /// Another instance published this (delivered at most once per instance, in its publish order).
    case envelope(HubEnvelope, from: String)
    /// The backplane is (again) connected: what this instance publishes reaches the others from now
    /// on. The hub re-announces its presence, since others may have missed changes.
    case connected
    /// An instance was heard for the first time (or again after it was declared gone). The hub
    /// announces its presence so that the newcomer learns who is here.
    case instanceAppeared(String)
    /// Publishes of this instance were lost (one side was disconnected): the hub asks every
    /// instance to send its presence again, to repair the member lists.
    case missed(from: String)
    /// An instance stopped (said goodbye) or was not heard for the backplane's timeout: the hub
    /// removes its members, announcing their leaves to local subscribers.
    case instanceGone(String)
}

/// Carries a hub's publishes to the hubs of other instances (processes, machines) and theirs back.
///
/// The hub calls ``relay(_:)`` for every publish and presence change, in order, and runs
/// ``run(_:)`` for as long as it serves. With no backplane a hub is in-process only and does
/// nothing extra. `SocketsPostgres.PostgresBackplane` relays through PostgreSQL's `LISTEN`/`NOTIFY`.
///
/// A conforming type guarantees, and documents how far: what one instance relays reaches every
/// other instance at most once and in relay order; its own relays never come back to it as
/// ``HubBackplaneEvent/envelope(_:from:)``.
public protocol HubBackplane: Sendable {
    /// This instance's id as other instances see it in ``HubBackplaneEvent/envelope(_:from:)``.
    var instanceID: String { get }

    /// Queues an envelope for the other instances. Called by the hub under its lock, in publish
    /// order: it must not block, wait, or call back into the hub.
    func relay(_ envelope: HubEnvelope)

    /// Connects, relays, and reports what other instances send through `events` until the calling
    /// task is cancelled; reconnects by itself when the connection is lost. Events about one
    /// instance are reported in the order they happened (the hub serializes the rest).
    ///
    /// - Throws: only for a configuration that can never work (the hub's ``Hub/run()`` rethrows).
    func run(_ events: @escaping @Sendable (HubBackplaneEvent) -> Void) async throws
}
