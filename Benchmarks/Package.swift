// swift-tools-version:6.1
// Peer servers for the benchmarks, in their own package so the library never depends on them
// (see Benchmarks/run-echo.sh and run-echo-deflate.sh). Build: swift build -c release --package-path Benchmarks
import PackageDescription

let package = Package(
    name: "SocketsBenchmarks",
    platforms: [.macOS(.v14)], // Hummingbird 2's minimum
    products: [
        .executable(name: "nio-echo", targets: ["NIOEcho"]),
        .executable(name: "hb-echo", targets: ["HBEcho"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "NIOEcho",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        // The Hummingbird 2 echo with permessage-deflate (Benchmarks/run-echo-deflate.sh).
        .executableTarget(
            name: "HBEcho",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSCompression", package: "hummingbird-websocket"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
