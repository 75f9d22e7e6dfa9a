import NIOConcurrencyHelpers

/// Numbers for connections' log lines: 1, 2, 3, … in the order connections upgrade, unique in
/// the process.
package enum ConnectionNumbers {
    private static let counter = NIOLockedValueBox<UInt64>(0)

    /// The next number.
    package static func next() -> UInt64 {
        counter.withLockedValue { n in
            n += 1
            return n
        }
    }
}
