// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Sockets",
    products: [
        .library(name: "Sockets", targets: ["Sockets"]),
        .executable(name: "sockets-echo", targets: ["SocketsEcho"]),
        .executable(name: "sockets-chat", targets: ["SocketsChat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .target(
            name: "CWebSocket",
            linkerSettings: [.linkedLibrary("z")]
        ),
        .target(
            name: "Sockets",
            dependencies: [
                "CWebSocket",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SocketsEcho",
            dependencies: ["Sockets"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SocketsChat",
            dependencies: [
                "Sockets",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Public")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CWebSocketTests",
            dependencies: ["CWebSocket"],
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
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6],
    cLanguageStandard: .c11
)
