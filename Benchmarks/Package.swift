// swift-tools-version:6.1
// Peer servers for the benchmarks, in their own package so the library never depends on them
// (see Benchmarks/run-echo.sh). Build: swift build -c release --package-path Benchmarks
import PackageDescription

let package = Package(
    name: "SocketsBenchmarks",
    products: [
        .executable(name: "nio-echo", targets: ["NIOEcho"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0")
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
        )
    ],
    swiftLanguageModes: [.v6]
)
