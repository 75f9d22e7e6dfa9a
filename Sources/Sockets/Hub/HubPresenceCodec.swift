import NIOCore

/// Presence changes as the hub relays them to other instances (envelopes of kind
/// ``HubEnvelope/Kind/presence``). Binary, big-endian:
///
/// | op | body |
/// |----|------|
/// | 1 join     | entry u64, name, joined notice, left notice (the envelope's topic is the topic) |
/// | 2 leave    | entry u64 |
/// | 3 snapshot | count u32, then per entry: topic, entry u64, name, joined notice, left notice |
/// | 4 request  | nothing: every instance that hears it sends its snapshot |
///
/// A string is a u32 length and UTF-8; a notice is a kind byte (0: none) then a u32 length and the
/// bytes. An entry id is unique within its instance. A snapshot replaces everything the receiver
/// knew about that instance's members.
enum HubPresenceCodec {
    struct Notice: Equatable, Sendable {
        let kind: HubEnvelope.Kind
        let payload: ByteBuffer
        var prepared: PreparedMessage? { PreparedMessage(kind: kind, payload: payload) }
    }

    struct Item: Equatable {
        let topic: String
        let entry: UInt64
        let name: String
        let joined: Notice?
        let left: Notice?
    }

    enum Change: Equatable {
        case join(topic: String, entry: UInt64, name: String, joined: Notice?, left: Notice?)
        case leave(entry: UInt64)
        case snapshot([Item])
        case request
    }

    static func request() -> HubEnvelope {
        HubEnvelope(topic: "", kind: .presence, payload: ByteBuffer(bytes: [4]))
    }

    static func join(topic: String, entry: UInt64, presence: HubPresence) -> HubEnvelope {
        var b = ByteBuffer()
        b.writeInteger(UInt8(1))
        b.writeInteger(entry)
        write(presence.name, to: &b)
        write(presence.joined, to: &b)
        write(presence.left, to: &b)
        return HubEnvelope(topic: topic, kind: .presence, payload: b)
    }

    static func leave(topic: String, entry: UInt64) -> HubEnvelope {
        var b = ByteBuffer()
        b.writeInteger(UInt8(2))
        b.writeInteger(entry)
        return HubEnvelope(topic: topic, kind: .presence, payload: b)
    }

    static func snapshot(_ entries: [(UInt64, String, HubPresence)]) -> HubEnvelope {
        var b = ByteBuffer()
        b.writeInteger(UInt8(3))
        b.writeInteger(UInt32(entries.count))
        for (entry, topic, presence) in entries.sorted(by: { $0.0 < $1.0 }) {
            write(topic, to: &b)
            b.writeInteger(entry)
            write(presence.name, to: &b)
            write(presence.joined, to: &b)
            write(presence.left, to: &b)
        }
        return HubEnvelope(topic: "", kind: .presence, payload: b)
    }

    /// The change, or nil when the bytes are not one (truncated, unknown op, trailing bytes).
    static func decode(_ envelope: HubEnvelope) -> Change? {
        var b = envelope.payload
        guard let op = b.readInteger(as: UInt8.self) else { return nil }
        let change: Change
        switch op {
        case 1:
            guard let entry = b.readInteger(as: UInt64.self), let name = readString(&b),
                  let joined = readNotice(&b), let left = readNotice(&b) else { return nil }
            change = .join(topic: envelope.topic, entry: entry, name: name, joined: joined, left: left)
        case 2:
            guard let entry = b.readInteger(as: UInt64.self) else { return nil }
            change = .leave(entry: entry)
        case 3:
            guard let count = b.readInteger(as: UInt32.self) else { return nil }
            var items: [Item] = []
            for _ in 0..<count {
                guard let topic = readString(&b), let entry = b.readInteger(as: UInt64.self), let name = readString(&b),
                      let joined = readNotice(&b), let left = readNotice(&b) else { return nil }
                items.append(Item(topic: topic, entry: entry, name: name, joined: joined, left: left))
            }
            change = .snapshot(items)
        case 4:
            change = .request
        default:
            return nil
        }
        return b.readableBytes == 0 ? change : nil
    }

    private static func write(_ s: String, to b: inout ByteBuffer) {
        b.writeInteger(UInt32(s.utf8.count))
        b.writeString(s)
    }

    private static func write(_ notice: PreparedMessage?, to b: inout ByteBuffer) {
        guard let (kind, payload) = notice?.envelopeParts else {
            b.writeInteger(UInt8(0))
            return
        }
        b.writeInteger(kind.rawValue)
        b.writeInteger(UInt32(payload.readableBytes))
        b.writeImmutableBuffer(payload)
    }

    private static func readString(_ b: inout ByteBuffer) -> String? {
        guard let n = b.readInteger(as: UInt32.self), n <= b.readableBytes else { return nil }
        return b.readString(length: Int(n))
    }

    /// `.some(nil)` for "no notice", nil for malformed bytes.
    private static func readNotice(_ b: inout ByteBuffer) -> Notice?? {
        guard let kind = b.readInteger(as: UInt8.self) else { return nil }
        if kind == 0 { return .some(nil) }
        guard kind == HubEnvelope.Kind.text.rawValue || kind == HubEnvelope.Kind.binary.rawValue,
              let n = b.readInteger(as: UInt32.self), n <= b.readableBytes,
              let payload = b.readSlice(length: Int(n)) else { return nil }
        return .some(Notice(kind: HubEnvelope.Kind(rawValue: kind), payload: payload))
    }
}
