import Foundation
import LinliAlink
import LinliCore
import LinliMQTT
import LinliStorage
import LinliThings
import Logging
import NIOCore
import Synchronization

/// Where MQTT meets Linli's devices: signs devices in with Alink (one secret per device, HMAC-signed
/// CONNECT, replay window), keeps their online status, and answers their property posts after
/// checking every value against the product's thing model. Integration accounts sign in here too.
final class DeviceGateway: Sendable {
    let store: Store
    let logger: Logger
    private let broker = Mutex<MQTTBroker?>(nil)
    /// Which device a connected client id is, set at sign-in.
    private let devices = Mutex<[String: Device]>([:])
    private let models = Mutex<[String: ThingModel]>([:])

    init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func attach(_ broker: MQTTBroker) { self.broker.withLock { $0 = broker } }

    func authenticate(_ connect: Connect, remote: String?) async -> MQTTAuthentication {
        guard let signIn = AlinkSignIn(connect) else {
            return await IntegrationAuthenticator(store: store, logger: logger).authenticate(connect, remote: remote)
        }
        // securemode 2 is Alink over TLS; this listener is plain TCP, where devices use 3.
        guard signIn.secureMode == 3 else { return .refused(.notAuthorized) }
        guard let device = try? await store.device(productKey: signIn.productKey, deviceName: signIn.deviceName),
              let secret = try? store.deviceSecret(device)
        else {
            logger.notice("device sign-in refused: unknown device", metadata: ["pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)", "remote": "\(remote ?? "-")"])
            return .refused(.badUsernameOrPassword)
        }
        guard signIn.verify(secret: secret) else {
            logger.notice("device sign-in refused: wrong signature", metadata: ["pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)"])
            return .refused(.badUsernameOrPassword)
        }
        guard signIn.isFresh() else {
            logger.notice("device sign-in refused: timestamp outside the allowed window", metadata: ["pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)"])
            return .refused(.notAuthorized)
        }
        guard device.status != .disabled else { return .refused(.notAuthorized) }
        devices.withLock { $0[connect.clientId] = device }
        return .accepted(signIn.policy)
    }

    func presence(clientId: String, connected: Bool) async {
        guard let device = devices.withLock({ connected ? $0[clientId] : $0.removeValue(forKey: clientId) }) else { return }
        do {
            try await store.setDeviceStatus(device, connected ? .online : .offline)
        } catch {
            logger.error("device status not stored", metadata: ["error": "\(error)"])
        }
    }

    func model(for productKey: String) async -> ThingModel? {
        if let cached = models.withLock({ $0[productKey] }) { return cached }
        guard let product = try? await store.product(key: productKey), let model = try? ThingModel.parse(tsl: Data(product.tslJson.utf8)) else { return nil }
        models.withLock { $0[productKey] = model }
        return model
    }

    /// Handles what devices send on their system topics; other topics are only routed.
    func handle(clientId: String, message: Publish) async throws {
        guard let (pk, dn, kind) = AlinkTopic.parse(message.topic) else { return }
        switch kind {
        case .propertyPost:
            let answer = await answer(Data(message.payload.readableBytesView), productKey: pk) { model, params in model.validateProperties(params) }
            await reply(to: clientId, topic: message.topic + "_reply", answer)
        case let .eventPost(identifier):
            let answer = await answer(Data(message.payload.readableBytesView), productKey: pk) { model, params in
                guard let event = model.event(identifier) else { return [ValueError(path: identifier, kind: .unknownIdentifier, reason: "is not an event of this product")] }
                // Event posts carry `params: {"value": {...}, "time": …}`.
                let values = params["value"] ?? params
                return model.validate(fields: event.outputData, values)
            }
            await reply(to: clientId, topic: message.topic + "_reply", answer)
        default:
            _ = dn
        }
    }

    private func answer(_ payload: Data, productKey: String, check: (ThingModel, JSONValue) -> [ValueError]) async -> Data {
        guard let request = AlinkRequest.parse(payload) else {
            return AlinkCode.reply(id: "0", code: AlinkCode.invalidRequest, message: "request is not Alink JSON with id and params")
        }
        guard let model = await model(for: productKey) else {
            return AlinkCode.reply(id: request.id, code: AlinkCode.noThingModel, message: "the product has no thing model")
        }
        let faults = check(model, request.params)
        guard let first = faults.first else { return AlinkCode.reply(id: request.id, code: AlinkCode.success, message: "success") }
        let code = first.kind == .unknownIdentifier ? AlinkCode.unknownIdentifier : AlinkCode.invalidValue
        return AlinkCode.reply(id: request.id, code: code, message: faults.map(\.description).joined(separator: "; "))
    }

    /// Replies go to the device that asked, without a subscription, as Alink devices expect.
    private func reply(to clientId: String, topic: String, _ payload: Data) async {
        guard let broker = broker.withLock({ $0 }) else { return }
        await broker.send(Publish(topic: topic, payload: ByteBuffer(bytes: payload), qos: .atMostOnce), to: clientId)
    }
}
