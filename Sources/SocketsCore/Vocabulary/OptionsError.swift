/// A configuration mistake, found when a route or handler is set up: the option that is wrong,
/// by its property name, and why.
public struct OptionsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The option that is wrong, by its property name (`"pingPeriod"`, `"compression.level"`).
    public let field: String
    /// Why, in a few words.
    public let reason: String

    /// Creates an error.
    /// - Parameters:
    ///   - field: the option's property name.
    ///   - reason: why it is wrong.
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    /// A one-line description: `"invalid Options.<field>: <reason>"`.
    public var description: String { "invalid Options.\(field): \(reason)" }
}
