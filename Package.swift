// swift-tools-version:6.2
import PackageDescription

// Kept deliberate: every dependency here is rebuilt from scratch on each CI run.
let sql = Target.Dependency.product(name: "SQLKit", package: "sql-kit")
let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
let package = Package(
    name: "linli",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "linli", targets: ["linli"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        // Already in the build through Hummingbird; named for the HTTP request parts a channel handler sees.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.0"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
    ],
    targets: [
        // Domain values of the community: people, homes, organisations, roles. No I/O.
        .target(
            name: "LinliCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto")
            ]
        ),
        // Event linkage: rules (triggers, conditions, actions) and their evaluation, with timers for
        // durations and absence. Pure logic: the server feeds it and carries out what it decides.
        // Work orders (工单): categories, statuses and the steps between them. Pure rules.

        // One storage code path for SQLite (embedded) and PostgreSQL: migrations, repositories, event log.
        .target(
            name: "LinliStorage",
            dependencies: [
                "LinliCore",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // Capability modules: each owns its domain, its tables and migrations, its queries; they use
        // one another only downwards (Community ← Devices, WorkOrders, Messaging ← Linkage).
        // The community data core (人、房、组织): places, households, people, residencies, vehicles,
        // organisations, staff, grids.
        .target(
            name: "LinliCommunity", dependencies: ["LinliCore", "LinliStorage", "LinliHTTP", sql, hummingbird],
            resources: [.copy("Templates"), .copy("openapi.yaml")]),
        // The household sheet (住户导入导出): households and residents read from a spreadsheet as
        // Excel saves it, and written back to one.
        .target(
            name: "LinliHouseholdImport",
            dependencies: ["LinliCore", "LinliStorage", "LinliHTTP", "LinliCommunity", sql, hummingbird],
            resources: [.copy("Templates"), .copy("openapi.yaml")]),
        // What devices are and what they said: products, the registry, the shadow and shadow
        // documents, telemetry in its own ledger, firmware packages and upgrades, integration accounts.
        .target(
            name: "LinliDeviceRegistry",
            dependencies: [
                "LinliCore", "LinliStorage", "LinliCommunity", "LinliThings", sql,
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // Devices as people and devices meet them: the broker's side (Alink sign-in, posts, services,
        // gateways and sub-devices, shadow documents, firmware offers), the API and the pages.
        .target(
            name: "LinliDevices",
            dependencies: [
                "LinliCore", "LinliStorage", "LinliHTTP", "LinliCommunity", "LinliDeviceRegistry", "LinliThings",
                "LinliMQTT", "LinliAlink", "LinliBrokerStore",
                sql,
                hummingbird,
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            resources: [.copy("Templates"), .copy("openapi.yaml")]
        ),
        // Work orders (工单): categories, statuses and the steps between them, photos, Open311 keys.
        .target(
            name: "LinliWorkOrders",
            dependencies: ["LinliCore", "LinliStorage", "LinliHTTP", "LinliCommunity", sql, hummingbird],
            resources: [.copy("Templates"), .copy("openapi.yaml")]),
        // Messaging: notices and receipts, inboxes, preferences, outbound SMS and mail, webhook deliveries.
        .target(
            name: "LinliMessaging",
            dependencies: [
                "LinliCore", "LinliStorage", "LinliHTTP", "LinliCommunity", sql, hummingbird,
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            resources: [.copy("Templates"), .copy("openapi.yaml")]),
        // Event linkage: rules (triggers, conditions, actions) and their evaluation, with timers for
        // durations and absence; alarms with their lifecycle and escalation.
        .target(
            name: "LinliLinkage",
            dependencies: [
                "LinliCore", "LinliStorage", "LinliHTTP", "LinliCommunity", "LinliThings", "LinliDeviceRegistry",
                "LinliDevices",
                "LinliWorkOrders", "LinliMessaging", sql, hummingbird,
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Templates"), .copy("openapi.yaml")]
        ),
        // The page machinery: templates in every language, the message catalogue, codes as labels,
        // the frame around every page, the pages' scripts and styles. It knows no requests.
        .target(
            name: "LinliPages",
            dependencies: [
                "LinliCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        // The HTTP kernel: request context, problem details, input decoding, paging, the response
        // cache, sign-in, sessions, accounts and their roles, the page layout. No community business.
        .target(
            name: "LinliHTTP",
            dependencies: [
                "LinliCore",
                "LinliPages",
                "LinliStorage",
                "LinliThings",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Templates"), .copy("openapi.yaml")]
        ),
        // The demo community `serve --demo` seeds: every capability's data, from a fixed seed.
        .target(
            name: "LinliDemo",
            dependencies: [
                "LinliCore", "LinliStorage", "LinliHTTP", "LinliCommunity", "LinliDeviceRegistry", "LinliDevices",
                "LinliWorkOrders",
                "LinliMessaging", "LinliLinkage", sql,
            ]
        ),
        // MQTT 3.1.1 and 5.0 on the wire: packets, properties, reason codes, their codec, topic
        // rules. Knows nothing of brokers or of Linli's business.
        .target(
            name: "LinliMQTTWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // The embedded MQTT broker over the wire kernel: connections, sessions, routing, limits.
        .target(
            name: "LinliMQTT",
            dependencies: [
                "LinliMQTTWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // What the embedded broker must not lose, in the database: persistent sessions, their messages,
        // retained messages and wills, written as a journal of group commits and checkpointed into tables.
        .target(
            name: "LinliBrokerStore",
            dependencies: [
                "LinliMQTT", "LinliStorage", sql,
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Thing models (Alibaba IoT TSL): parse, export, validate values; the built-in product library.
        .target(name: "LinliThings"),
        // Alink, the device protocol on top of MQTT: signed device sign-in, topics, request and reply payloads.
        .target(
            name: "LinliAlink",
            dependencies: [
                "LinliMQTT",
                "LinliThings",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The MQTT load generator behind `linli bench mqtt`: simulated Alink devices on SwiftNIO.
        .target(
            name: "LinliBench",
            dependencies: [
                "LinliMQTT",
                "LinliAlink",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The HTTP application: API, web console, resident portal, identity and access.
        .target(
            name: "LinliServer",
            dependencies: [
                "LinliBrokerStore",
                "LinliCore",
                "LinliStorage",
                "LinliHTTP",
                "LinliDemo",
                "LinliMQTT",
                "LinliAlink",
                "LinliThings",
                "LinliCommunity",
                "LinliHouseholdImport",
                "LinliDeviceRegistry",
                "LinliDevices",
                "LinliWorkOrders",
                "LinliMessaging",
                "LinliLinkage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            resources: [.copy("Resources")]
        ),
        .executableTarget(
            name: "linli",
            dependencies: [
                "LinliServer",
                "LinliHTTP",
                "LinliDemo",
                "LinliStorage",
                "LinliMQTT",
                "LinliBrokerStore",
                "LinliThings",
                "LinliBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The tests' shared helpers: a fresh store on every engine (SQLite, and PostgreSQL when
        // LINLI_TEST_POSTGRES_URL is set), the demo community and the app in-process. Not a product.
        .target(
            name: "LinliTestSupport",
            dependencies: [
                "LinliCore", "LinliStorage", "LinliHTTP", "LinliCommunity", "LinliDemo", "LinliServer", sql,
                hummingbird,
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A small MQTT client for tests, over the broker's own codec. Not a product.
        .target(
            name: "LinliMQTTTesting",
            dependencies: [
                "LinliMQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(name: "LinliCoreTests", dependencies: ["LinliCore"]),
        .testTarget(name: "LinliThingsTests", dependencies: ["LinliThings"]),
        .testTarget(name: "LinliAlinkTests", dependencies: ["LinliAlink", "LinliMQTT", "LinliThings"]),
        .testTarget(
            name: "LinliMQTTWireTests",
            dependencies: [
                "LinliMQTTWire", "LinliMQTTTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LinliMQTTTests",
            dependencies: [
                "LinliMQTT", "LinliMQTTTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "LinliBenchTests",
            dependencies: [
                "LinliBench",
                "LinliMQTT",
                "LinliAlink",
                "LinliThings",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LinliStorageTests",
            dependencies: ["LinliCommunity", "LinliCore", "LinliServer", "LinliStorage", "LinliTestSupport", sql]),
        .testTarget(
            name: "LinliCommunityTests",
            dependencies: [
                "LinliCommunity", "LinliCore", "LinliDemo", "LinliHTTP", "LinliHouseholdImport", "LinliStorage",
                "LinliTestSupport", hummingbird, .product(name: "HummingbirdTesting", package: "hummingbird"), sql,
            ]),
        .testTarget(
            name: "LinliDeviceRegistryTests",
            dependencies: [
                "LinliCommunity", "LinliCore", "LinliDeviceRegistry", "LinliHTTP", "LinliServer", "LinliStorage",
                "LinliTestSupport", sql,
            ]),
        .testTarget(
            name: "LinliDevicesTests",
            dependencies: [
                "LinliAlink", "LinliBrokerStore", "LinliCommunity", "LinliCore", "LinliDeviceRegistry", "LinliDevices",
                "LinliHTTP", "LinliMQTT", "LinliMQTTTesting", "LinliServer", "LinliStorage", "LinliTestSupport",
                "LinliThings",
                hummingbird,
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
        .testTarget(
            name: "LinliWorkOrdersTests",
            dependencies: [
                "LinliCommunity", "LinliCore", "LinliHTTP", "LinliStorage", "LinliTestSupport", "LinliWorkOrders",
                hummingbird, .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
        .testTarget(
            name: "LinliMessagingTests",
            dependencies: [
                "LinliCommunity", "LinliCore", "LinliHTTP", "LinliMessaging", "LinliStorage", "LinliTestSupport",
                hummingbird, .product(name: "HummingbirdTesting", package: "hummingbird"), sql,
            ]),
        .testTarget(
            name: "LinliLinkageTests",
            dependencies: [
                "LinliCommunity", "LinliCore", "LinliDemo", "LinliDeviceRegistry", "LinliDevices", "LinliHTTP",
                "LinliLinkage", "LinliMessaging", "LinliServer", "LinliStorage", "LinliTestSupport", "LinliWorkOrders",
                hummingbird, .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
        .testTarget(
            name: "LinliServerTests",
            dependencies: [
                "LinliAlink", "LinliCommunity", "LinliCore", "LinliDemo", "LinliDeviceRegistry", "LinliDevices",
                "LinliHTTP", "LinliHouseholdImport", "LinliLinkage", "LinliMQTT", "LinliMessaging", "LinliServer",
                "LinliStorage",
                "LinliTestSupport", "LinliWorkOrders", hummingbird,
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
