import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliStorage

@Suite("Device commands API")
struct DeviceCommandsAPITests {
    @Test func deviceCommandsAreScopedAndNeedTheBroker() async throws {
        try await withApp { client, fixture in
            let product = Product(
                communityId: fixture.community.id, productKey: "a1TestLamp", name: "路灯", libraryKey: nil, tslJson: "{}")
            try await fixture.store.createProduct(product, actor: .system)
            _ = try await fixture.store.registerDevice(product: product, deviceName: "lamp-1", actor: .system)
            let uri = "/api/v1/devices/a1TestLamp/lamp-1/properties"
            let body = jsonBody(["params": ["LightSwitch": 1]])
            #expect(
                try await client.execute(
                    uri: uri, method: .post, headers: HTTPFields.json.merging(fixture.bearer("guard")), body: body
                ) { $0.status } == .forbidden)
            #expect(
                try await client.execute(
                    uri: uri, method: .post, headers: HTTPFields.json.merging(fixture.bearer("other-manager")),
                    body: body
                ) { $0.status } == .notFound)
            #expect(
                try await client.execute(
                    uri: "/api/v1/devices/a1TestLamp/nope/properties", method: .post,
                    headers: HTTPFields.json.merging(fixture.bearer("staff")), body: body
                ) { $0.status } == .notFound)
            // This node runs without the broker (as `--mqtt off`): a clear 503, not a hang.
            #expect(
                try await client.execute(
                    uri: uri, method: .post, headers: HTTPFields.json.merging(fixture.bearer("staff")), body: body
                ) { $0.status } == .serviceUnavailable)
        }
    }
}
