// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Sockets",
    // Duration, Regex and the concurrency runtime the API uses need macOS 13 / iOS 16.
    platforms: [.macOS(.v13), .iOS(.v16), .tvOS(.v16), .watchOS(.v9)],
    products: [
        .library(name: "Sockets", targets: ["Sockets"]),
        .library(name: "SocketsCore", targets: ["SocketsCore"]),
        .executable(name: "sockets-echo", targets: ["SocketsEcho"]),
        .executable(name: "sockets-chat", targets: ["SocketsChat"]),
        .library(name: "SocketsPostgres", targets: ["SocketsPostgres"]),
        .executable(name: "sockets-client", targets: ["SocketsClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        // The PostgreSQL backplane (its own target: the core does not depend on it).
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.27.0"),
        // 2.13: the metric initialisers that take a factory (WebSocketMetrics(factory:)).
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        // `swift package generate-documentation` (scripts/docs.sh); a plugin only, nothing linked.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "CWebSocket",
            linkerSettings: [.linkedLibrary("z")]
        ),
        // The NIO layer: vocabulary, engine wrapper, handler and its state machine, upgrader.
        .target(
            name: "SocketsCore",
            dependencies: [
                "CWebSocket",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The channel layer (Socket<T>, codecs, Options) and the Martini-like layer (router, App,
        // Classic, server); re-exports SocketsCore.
        .target(
            name: "Sockets",
            dependencies: [
                "SocketsCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SocketsEcho",
            dependencies: ["Sockets", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        // The hub's PostgreSQL backplane (LISTEN/NOTIFY through postgres-nio): an integration of
        // its own, so that Sockets does not depend on postgres-nio.
        .target(
            name: "SocketsPostgres",
            dependencies: [
                "Sockets",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // A small wscat: the client from the command line.
        .executableTarget(
            name: "SocketsClient",
            dependencies: [
                "Sockets",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SocketsChat",
            dependencies: [
                "Sockets",
                "SocketsPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Public")],
            swiftSettings: swiftSettings
        ),
        // examples/nio-server: a plain SwiftNIO server with the channel layer (classic and typed
        // upgrade); built with the tests, which drive it (Tests/SocketsTests/NIOExampleTests.swift).
        .executableTarget(
            name: "NIOServerExample",
            dependencies: [
                "Sockets",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "examples/nio-server",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CWebSocketTests",
            dependencies: ["CWebSocket"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SocketsCoreTests",
            dependencies: [
                "SocketsCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SocketsTests",
            dependencies: [
                "Sockets",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SocketsPostgresTests",
            dependencies: [
                "SocketsPostgres",
                "Sockets",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6],
    cLanguageStandard: .c11
)
