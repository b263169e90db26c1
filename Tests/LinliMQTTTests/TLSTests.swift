import Foundation
import LinliMQTTTesting
import Logging
import NIOCore
import NIOSSL
import Synchronization
import Testing

@testable import LinliMQTT

/// The test-only certificate and keys in Fixtures/ (see its README).
enum Fixture {
    static func path(_ name: String) -> String {
        Bundle.module.url(forResource: name, withExtension: "pem", subdirectory: "Fixtures")!.path
    }
    static var certificate: String { path("test-only-cert") }
    static var key: String { path("test-only-key") }
    static var otherKey: String { path("test-only-other-key") }

    static func tlsConfiguration() throws -> MQTTBrokerConfiguration {
        MQTTBrokerConfiguration(
            port: 0, tls: try MQTTTLSListener(port: 0, certificateFile: certificate, keyFile: key),
            connectTimeout: .milliseconds(800))
    }

    /// A client context that trusts only the test certificate, and checks it names 127.0.0.1.
    static func clientContext() throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate))
        return try NIOSSLContext(configuration: tls)
    }
}

/// What a test's broker logged, so a test can check that a failure was reported.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }

    var logger: Logger {
        Logger(label: "mqtt-tls-test") { _ in Handler(lines: self) }
    }

    struct Handler: LogHandler {
        let lines: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { lines.append("\(event.message)") }
    }
}

@Suite("MQTT broker over TLS")
struct TLSTests {
    @Test func tlsClientsConnectAndTalkToPlainClients() async throws {
        try await withBrokerPorts(try Fixture.tlsConfiguration()) { ports, _ in
            let tlsPort = try #require(ports.tls)
            #expect(tlsPort != ports.tcp)
            let client = try Fixture.clientContext()
            let (secureSub, ack) = try await TestClient.connected(tlsPort, id: "tls-sub", tls: client)
            #expect(ack == .connack(sessionPresent: false, returnCode: .accepted))
            #expect(
                try await secureSub.subscribe("gate/#", qos: .atLeastOnce) == .suback(packetId: 1, returnCodes: [1]))
            let (plainSub, _) = try await TestClient.connected(ports.tcp, id: "plain-sub")
            _ = try await plainSub.subscribe("gate/#", qos: .atMostOnce)

            // Over TLS in, to both listeners' subscribers out.
            let (securePub, _) = try await TestClient.connected(tlsPort, id: "tls-pub", tls: client)
            try await securePub.send(
                .publish(
                    Publish(topic: "gate/1/state", payload: ByteBuffer(string: "open"), qos: .atLeastOnce, packetId: 3))
            )
            #expect(await securePub.next() == .puback(3))
            guard case let .publish(got)? = await secureSub.next() else {
                Issue.record("no delivery over TLS")
                return
            }
            #expect(got.topic == "gate/1/state" && String(buffer: got.payload) == "open" && got.qos == .atLeastOnce)
            try await secureSub.send(.puback(got.packetId!))
            guard case let .publish(plain)? = await plainSub.next() else {
                Issue.record("no delivery to the plain listener")
                return
            }
            #expect(String(buffer: plain.payload) == "open")

            // And from plain TCP in, to the TLS subscriber.
            let (plainPub, _) = try await TestClient.connected(ports.tcp, id: "plain-pub")
            try await plainPub.send(.publish(Publish(topic: "gate/2/state", payload: ByteBuffer(string: "closed"))))
            guard case let .publish(back)? = await secureSub.next() else {
                Issue.record("no delivery from plain to TLS")
                return
            }
            #expect(back.topic == "gate/2/state" && back.qos == .atMostOnce)
        }
    }

    @Test func theAuthenticatorIsToldWhichConnectionsAreSecure() async throws {
        try await withBrokerPorts(try Fixture.tlsConfiguration()) { ports, _ in
            let (_, overTLS) = try await TestClient.connected(
                try #require(ports.tls), id: "s1", user: "secure", tls: try Fixture.clientContext())
            #expect(overTLS == .connack(sessionPresent: false, returnCode: .accepted))
            let (_, plain) = try await TestClient.connected(ports.tcp, id: "s2", user: "secure")
            #expect(plain == .connack(sessionPresent: false, returnCode: .notAuthorized))
        }
    }

    @Test func failedHandshakesCloseOnlyTheirOwnConnection() async throws {
        let log = LogLines()
        try await withBrokerPorts(try Fixture.tlsConfiguration(), logger: log.logger) { ports, _ in
            let tlsPort = try #require(ports.tls)
            let (healthy, _) = try await TestClient.connected(tlsPort, id: "healthy", tls: try Fixture.clientContext())
            // Plain MQTT sent to the TLS port is not a TLS handshake.
            let connect = Array(
                Wire.bytes(
                    .connect(
                        Connect(
                            cleanSession: true, keepAlive: 5, clientId: "plain", username: "good",
                            password: ByteBuffer(string: "pw")))
                ).readableBytesView)
            #expect(try await RawClient.closesAfter(port: tlsPort, [connect]))
            // Garbage after a few bytes that look like the start of a TLS record.
            #expect(
                try await RawClient.closesAfter(
                    port: tlsPort, [[0x16, 0x03, 0x01, 0x00, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]]))
            // A socket that opens and never starts the handshake is closed by the connect timeout.
            #expect(try await RawClient.closesAfter(port: tlsPort, []))
            // A client that does not trust the certificate gives up; the broker only loses it.
            let distrustful = try await TestClient(
                port: tlsPort, tls: NIOSSLContext(configuration: .makeClientConfiguration()))
            #expect(await distrustful.closedWithin(.seconds(3)))
            // TLS to the plain port is not MQTT.
            let confused = try await TestClient(port: ports.tcp, tls: try Fixture.clientContext())
            #expect(await confused.closedWithin(.seconds(3)))

            try await healthy.send(.pingreq)
            #expect(await healthy.next() == .pingresp)
            let (late, ack) = try await TestClient.connected(tlsPort, id: "late", tls: try Fixture.clientContext())
            #expect(ack == .connack(sessionPresent: false, returnCode: .accepted))
            _ = late
            #expect(log.all.contains("closing: TLS handshake failed"))
        }
    }

    @Test func certificateAndKeyFilesAreChecked() throws {
        #expect(throws: MQTTTLSListener.FileProblem.certificateUnreadable) {
            try MQTTTLSListener(certificateFile: "/nonexistent/cert.pem", keyFile: Fixture.key)
        }
        #expect(throws: MQTTTLSListener.FileProblem.certificateNotPEM) {
            try MQTTTLSListener(certificateFile: Fixture.key, keyFile: Fixture.key)
        }
        #expect(throws: MQTTTLSListener.FileProblem.keyUnreadable) {
            try MQTTTLSListener(certificateFile: Fixture.certificate, keyFile: "/nonexistent/key.pem")
        }
        #expect(throws: MQTTTLSListener.FileProblem.keyNotPEM) {
            try MQTTTLSListener(certificateFile: Fixture.certificate, keyFile: Fixture.certificate)
        }
        #expect(throws: MQTTTLSListener.FileProblem.keyDoesNotMatchCertificate) {
            try MQTTTLSListener(certificateFile: Fixture.certificate, keyFile: Fixture.otherKey)
        }
        let listener = try MQTTTLSListener(
            host: "0.0.0.0", port: 8884, certificateFile: Fixture.certificate, keyFile: Fixture.key)
        #expect(listener.host == "0.0.0.0" && listener.port == 8884)
    }
}
