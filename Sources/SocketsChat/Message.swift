import Sockets

/// The chat's one message type, the reference example's: `{"typ": ..., "from": ..., "text": ...}`.
///
/// - `typ`: `"status"` for join and leave notices, `"message"` for chat text.
/// - `from`: the sender's client name. The server always sets it (and `typ`) itself, so a client
///   can neither speak for someone else nor forge a status notice.
/// - `text`: the chat text, or `"joined"` / `"left"` in a status notice.
/// - `members`: only in the `"members"` message, the first one a client gets: who is in the room
///   (on every instance of the chat), itself included. Joins and leaves after it come as status
///   notices.
///
/// Decoding tolerates missing fields (they become `""`), as Go's `json.Unmarshal` into the
/// reference's struct does: a client sends `{"text": "hi"}` and the server fills in the rest.
struct Message: Codable, Sendable, Equatable {
    var typ: String
    var from: String
    var text: String
    var members: [String]?

    init(typ: String, from: String, text: String, members: [String]? = nil) {
        self.typ = typ
        self.from = from
        self.text = text
        self.members = members
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        typ = try c.decodeIfPresent(String.self, forKey: .typ) ?? ""
        from = try c.decodeIfPresent(String.self, forKey: .from) ?? ""
        text = try c.decodeIfPresent(String.self, forKey: .text) ?? ""
        // A client cannot send a member list: it is ignored.
        members = nil
    }

    static func status(_ name: String, _ text: String) -> Message { Message(typ: "status", from: name, text: text) }
}

/// Room and client names: 1 to 64 characters, no control characters (they would garble the
/// pages and the logs). Anything else, `/` and emoji included, is fine: names travel
/// percent-encoded in the URL and as JSON strings.
func isValidName(_ s: String) -> Bool {
    !s.isEmpty && s.count <= 64 && !s.unicodeScalars.contains { $0.properties.generalCategory == .control }
}
