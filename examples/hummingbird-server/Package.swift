// swift-tools-version:6.1
// A Hummingbird 2 server whose router serves plain HTTP and whose WebSocket upgrades go to a
// Sockets route (`Sockets.json`), through NIO's typed upgrade and Sockets' TypedWebSocketUpgrader.
// Its own package, so that the library does not depend on Hummingbird. Build and drive it with
// examples/hummingbird-server/check.sh.
import PackageDescription

let package = Package(
    name: "sockets-hummingbird-example",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Sockets", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "SocketsHummingbird",
            dependencies: [
                .product(name: "Sockets", package: "Sockets"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
