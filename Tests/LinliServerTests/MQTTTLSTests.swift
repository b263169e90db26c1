import Foundation
import LinliAlink
import LinliMQTT
import LinliStorage
import NIOCore
import Testing
@testable import LinliServer

@Suite("MQTT over TLS: settings and device sign-in")
struct MQTTTLSTests {
    @Test func alinkSecureModeMustFitTheConnection() async throws {
        let fixture = try await makeFixture()
        let product = Product(communityId: fixture.community.id, productKey: Product.newKey(), name: "door", libraryKey: nil, tslJson: "{}")
        try await fixture.store.createProduct(product, actor: .system)
        let (_, secret) = try await fixture.store.registerDevice(product: product, deviceName: "door-1", actor: .system)
        let gateway = DeviceGateway(store: fixture.store, logger: quietLogger)

        func code(mode: Int, secure: Bool, secret: String = secret) async -> ConnectReturnCode? {
            let timestamp = Int64(Date().timeIntervalSince1970 * 1000)
            let content = "clientIddoor-1deviceNamedoor-1productKey\(product.productKey)timestamp\(timestamp)"
            let connect = Connect(cleanSession: true, keepAlive: 60, clientId: "door-1|securemode=\(mode),signmethod=hmacsha256,timestamp=\(timestamp)|",
                                  username: "door-1&\(product.productKey)", password: ByteBuffer(string: AlinkSignIn.sign(content, secret: secret, method: .hmacsha256)))
            switch await gateway.authenticate(connect, connection: MQTTConnectionInfo(remote: "127.0.0.1", secure: secure)) {
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
