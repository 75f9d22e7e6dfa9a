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
    ],
    targets: [
        // The C protocol engine. Public headers live in the top-level include/ folder;
        // Sources/CWebSocket/include is a symlink to it because SwiftPM wants them inside the target.
        // No unsafeFlags: SIMD kernels use function-level target attributes instead.
        .target(
            name: "CWebSocket",
            linkerSettings: [.linkedLibrary("z")]
        ),
        .target(
            name: "Sockets",
            dependencies: ["CWebSocket"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CWebSocketTests",
            dependencies: ["CWebSocket"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SocketsTests",
            dependencies: ["Sockets"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6],
    cLanguageStandard: .c11
)
