import Foundation
import LinliAlink
import LinliMQTT
import LinliStorage
import LinliTestSupport
import NIOCore
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliServer
@testable import LinliWorkOrders

/// The test-only certificate and keys kept beside the broker's tests (Tests/LinliMQTTTests/Fixtures).
private func fixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("LinliMQTTTests/Fixtures/\(name).pem").path
}

@Suite("MQTT over TLS: settings and device sign-in")
struct MQTTTLSTests {
    let certificate = fixture("test-only-cert")
    let key = fixture("test-only-key")

    func resolve(_ flags: [String: String], environment: [String: String] = [:], file: String? = nil) throws
        -> ServerConfiguration
    {
        try ServerConfiguration.resolve(flags: flags, environment: environment, configFile: file)
    }

    func failure(_ flags: [String: String], environment: [String: String] = [:]) -> String? {
        do {
            _ = try resolve(flags, environment: environment)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func tlsIsOffUntilACertificateIsConfiguredThenOnAt8883() throws {
        #expect(try resolve([:]).mqttTLS == nil)
        let on = try #require(try resolve(["mqtt-tls-cert": certificate, "mqtt-tls-key": key]).mqttTLS)
        #expect(on.host == "127.0.0.1" && on.port == 8883)
        let moved = try #require(
            try resolve(
                [:],
                environment: [
                    "LINLI_MQTT_TLS": "0.0.0.0:9883", "LINLI_MQTT_TLS_CERT": certificate, "LINLI_MQTT_TLS_KEY": key,
                ]
            ).mqttTLS)
        #expect(moved.host == "0.0.0.0" && moved.port == 9883)
        #expect(try resolve(["mqtt-tls": "off", "mqtt-tls-cert": certificate, "mqtt-tls-key": key]).mqttTLS == nil)

        let file = NSTemporaryDirectory() + "linli-tls-\(UUID().uuidString).conf"
        try "mqtt-tls = 127.0.0.1:18883\nmqtt-tls-cert = \(certificate)\nmqtt-tls-key = \(key)\n".write(
            toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try resolve([:], file: file).mqttTLS?.port == 18883)
        // Flags win over the file.
        #expect(try resolve(["mqtt-tls": "127.0.0.1:28883"], file: file).mqttTLS?.port == 28883)
    }

    @Test func brokerLimitsAreSettingsCheckedAtStart() throws {
        let defaults = try #require(try resolve([:]).mqttBroker)
        #expect(
            defaults.maxConnections == 50_000 && defaults.maxPublishesPerSecond == 1_000
                && defaults.queueLimit == 10_000
                && defaults.limits.maxPacketSize == 256 * 1024 && defaults.sessionExpiry == .seconds(7 * 86_400))
        let set = try #require(
            try resolve(
                [:],
                environment: [
                    "LINLI_MQTT_MAX_CONNECTIONS": "20000", "LINLI_MQTT_PUBLISH_RATE": "5000",
                    "LINLI_MQTT_QUEUE": "200", "LINLI_MQTT_MAX_PACKET_KIB": "1024",
                    "LINLI_MQTT_SESSION_EXPIRY": "12h",
                ]
            ).mqttBroker)
        #expect(
            set.maxConnections == 20_000 && set.maxPublishesPerSecond == 5_000 && set.queueLimit == 200
                && set.limits.maxPacketSize == 1024 * 1024 && set.sessionExpiry == .seconds(12 * 3_600))
        #expect(try resolve(["mqtt": "off"]).mqttBroker == nil)
        for (key, value) in [
            ("LINLI_MQTT_MAX_CONNECTIONS", "0"), ("LINLI_MQTT_PUBLISH_RATE", "fast"), ("LINLI_MQTT_QUEUE", "-1"),
            ("LINLI_MQTT_MAX_PACKET_KIB", "99999"), ("LINLI_MQTT_SESSION_EXPIRY", "7"),
            ("LINLI_MQTT_SESSION_EXPIRY", "0d"), ("LINLI_MQTT_SESSION_EXPIRY", "11y"),
        ] {
            #expect(failure([:], environment: [key: value])?.contains(key) == true, "\(key)=\(value)")
        }
    }

    @Test func wrongTLSSettingsStopStartUpNamingTheSetting() {
        let missingKey = failure(["mqtt-tls-cert": certificate])
        #expect(missingKey?.contains("--mqtt-tls-cert") == true && missingKey?.contains("mqtt-tls-key") == true)
        #expect(failure([:], environment: ["LINLI_MQTT_TLS_KEY": key])?.contains("LINLI_MQTT_TLS_KEY") == true)
        #expect(failure(["mqtt-tls": "127.0.0.1:8883"])?.contains("--mqtt-tls needs mqtt-tls-cert") == true)
        #expect(
            failure(["mqtt-tls": "everywhere", "mqtt-tls-cert": certificate, "mqtt-tls-key": key])?.contains(
                "--mqtt-tls must be host:port") == true)
        #expect(
            failure(["mqtt-tls-cert": "/nonexistent.pem", "mqtt-tls-key": key])?.contains(
                "--mqtt-tls-cert file /nonexistent.pem cannot be read") == true)
        #expect(failure(["mqtt-tls-cert": key, "mqtt-tls-key": key])?.contains("--mqtt-tls-cert") == true)
        #expect(
            failure(["mqtt-tls-cert": certificate, "mqtt-tls-key": certificate])?.contains("--mqtt-tls-key") == true)
        #expect(
            failure(["mqtt-tls-cert": certificate, "mqtt-tls-key": fixture("test-only-other-key")])?.contains(
                "--mqtt-tls-key") == true)
        #expect(
            failure(["mqtt": "127.0.0.1:8883", "mqtt-tls-cert": certificate, "mqtt-tls-key": key])?.contains(
                "same address") == true)
    }

    @Test func alinkSecureModeMustFitTheConnection() async throws {
        let fixture = try await makeFixture()
        let product = Product(
            communityId: fixture.community.id, productKey: Product.newKey(), name: "door", libraryKey: nil,
            tslJson: "{}")
        try await fixture.store.createProduct(product, actor: .system)
        let (_, secret) = try await fixture.store.registerDevice(product: product, deviceName: "door-1", actor: .system)
        let gateway = DeviceGateway(store: fixture.store, logger: quietLogger)

        func code(mode: Int, secure: Bool, secret: String = secret) async -> ConnectReturnCode? {
            let timestamp = Int64(Date().timeIntervalSince1970 * 1000)
            let content = "clientIddoor-1deviceNamedoor-1productKey\(product.productKey)timestamp\(timestamp)"
            let connect = Connect(
                cleanSession: true, keepAlive: 60,
                clientId: "door-1|securemode=\(mode),signmethod=hmacsha256,timestamp=\(timestamp)|",
                username: "door-1&\(product.productKey)",
                password: ByteBuffer(string: AlinkSignIn.sign(content, secret: secret, method: .hmacsha256)))
            switch await gateway.authenticate(
                connect, connection: MQTTConnectionInfo(remote: "127.0.0.1", secure: secure))
            {
            case .accepted: return nil
            case let .refused(code): return code
            }
        }
        #expect(await code(mode: 2, secure: true) == nil)
        #expect(await code(mode: 3, secure: false) == nil)
        #expect(await code(mode: 3, secure: true) == .notAuthorized)
        #expect(await code(mode: 2, secure: false) == .notAuthorized)
        #expect(await code(mode: 1, secure: true) == .notAuthorized)
        // The right mode does not excuse a wrong signature.
        #expect(await code(mode: 2, secure: true, secret: "not-the-secret") == .badUsernameOrPassword)
        await fixture.store.database.close()
    }
}
