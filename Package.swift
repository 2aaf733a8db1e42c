// swift-tools-version: 6.1
import PackageDescription

/// One set of settings for every Swift target (Swift 6 language mode is the tools-version default).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "malloctrace",
    products: [
        .executable(name: "malloctrace", targets: ["malloctrace"]),
        // The control API for Swift programs (malloctrace.h's calls). Links no part of the interposer.
        .library(name: "MallocTraceAPI", targets: ["MallocTraceAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        // The trace format's single source of truth: a C header the interposer and the reader share.
        .target(name: "CMallocTraceFormat"),
        // libzstd from the system: the CLI compresses finished traces, the reader decompresses them.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // malloctrace.h, the one header C and C++ programs copy; its calls find libmalloctrace.so at run time.
        // Defines no allocator function, so Swift targets may depend on it.
        .target(name: "CMallocTraceAPI"),
        .target(name: "MallocTraceAPI", dependencies: ["CMallocTraceAPI"], swiftSettings: swiftSettings),
        // A Swift program annotated with MallocTraceAPI (docs/api.md); the tests trace it.
        .executableTarget(
            name: "malloctrace-swift-arena", dependencies: ["MallocTraceAPI"], path: "tools/examples/SwiftArena",
            swiftSettings: swiftSettings),
        // zlib from the system: pprof profiles are gzip-compressed protobuf.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "MallocTraceFormat", dependencies: ["CMallocTraceFormat", "CZstd"], swiftSettings: swiftSettings
        ),
        .target(name: "MallocTraceAnalysis", dependencies: ["MallocTraceFormat"], swiftSettings: swiftSettings),
        // __cxa_demangle and swift_demangle behind two C functions. Defines no allocator function.
        .target(name: "CMallocTraceDemangle", linkerSettings: [.linkedLibrary("stdc++")]),
        .target(
            name: "MallocTraceSymbolication", dependencies: ["MallocTraceFormat", "CMallocTraceDemangle"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MallocTraceReports",
            dependencies: ["MallocTraceFormat", "MallocTraceAnalysis", "MallocTraceSymbolication", "CZlib"],
            swiftSettings: swiftSettings
        ),
        // The CI gate: leak findings by kind, suppressions, limits, baselines and their renderers.
        .target(
            name: "MallocTraceCheck",
            dependencies: [
                "MallocTraceFormat", "MallocTraceAnalysis", "MallocTraceReports", "MallocTraceSymbolication",
            ],
            swiftSettings: swiftSettings
        ),
        // The CLI. Its plugin compiles Sources/MallocTracePreload into libmalloctrace.so, which lands in
        // the CLI's resource bundle. The .so is never a SwiftPM library: that would link the Swift runtime
        // into every traced program.
        .executableTarget(
            name: "malloctrace",
            dependencies: [
                "MallocTraceFormat", "MallocTraceAnalysis", "MallocTraceReports", "MallocTraceSymbolication",
                "MallocTraceCheck", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["BuildPreloadLibrary"]
        ),
        .plugin(name: "BuildPreloadLibrary", capability: .buildTool(), path: "tools/BuildPreloadLibrary"),

        .testTarget(
            name: "MallocTraceFormatTests",
            dependencies: ["MallocTraceFormat", "CMallocTraceFormat", "CZstd"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MallocTraceSymbolicationTests",
            dependencies: ["MallocTraceSymbolication", "MallocTraceFormat"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MallocTraceAnalysisTests",
            dependencies: ["MallocTraceAnalysis", "MallocTraceFormat"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MallocTraceReportsTests",
            dependencies: ["MallocTraceReports", "MallocTraceAnalysis", "MallocTraceFormat"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MallocTraceCheckTests",
            dependencies: ["MallocTraceCheck", "MallocTraceReports", "MallocTraceFormat"],
            swiftSettings: swiftSettings
        ),
        // Traces the C fixture programs (Tests/Fixtures, compiled by the same plugin) and runs the built CLI.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "malloctrace", "MallocTraceFormat", "MallocTraceAnalysis", "MallocTraceReports",
                "MallocTraceSymbolication", "malloctrace-swift-arena",
            ],
            exclude: ["Golden"],
            swiftSettings: swiftSettings,
            plugins: ["BuildPreloadLibrary"]
        ),
    ]
)
