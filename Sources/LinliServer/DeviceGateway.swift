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
public final class DeviceGateway: Sendable {
    let store: Store
    let logger: Logger
    private let broker = Mutex<MQTTBroker?>(nil)
    /// Which device a connected client id is, set at sign-in.
    private let devices = Mutex<[String: Device]>([:])
    private let models = Mutex<[String: ThingModel]>([:])
    /// Commands sent to devices and awaiting their reply, by "pk/dn/id".
    private let pending = Mutex<[String: CheckedContinuation<JSONValue?, Never>]>([:])
    private let nextRequestId = Atomic<Int>(1)

    init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func attach(_ broker: MQTTBroker) { self.broker.withLock { $0 = broker } }

    func authenticate(_ connect: Connect, connection: MQTTConnectionInfo) async -> MQTTAuthentication {
        let remote = connection.remote
        guard let signIn = AlinkSignIn(connect) else {
            return await IntegrationAuthenticator(store: store, logger: logger).authenticate(connect, connection: connection)
        }
        // securemode says how the device meant to connect: 2 over TLS, 3 over plain TCP. Any other
        // pairing is a misconfigured device or a downgrade, and is refused before the secret is used.
        guard signIn.secureMode == (connection.secure ? 2 : 3) else {
            logger.notice("device sign-in refused: securemode does not fit the connection (2 is for TLS, 3 for plain TCP)",
                          metadata: ["pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)", "securemode": "\(signIn.secureMode)",
                                     "tls": "\(connection.secure)", "remote": "\(remote ?? "-")"])
            return .refused(.notAuthorized)
        }
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
        case .propertySetReply:
            resolve(productKey: pk, deviceName: dn, payload: Data(message.payload.readableBytesView))
        case .serviceReply:
            resolve(productKey: pk, deviceName: dn, payload: Data(message.payload.readableBytesView))
        case .other:
            break
        }
    }

    // MARK: commands from the platform to a device

    public enum Command: Sendable {
        case setProperties(JSONValue)
        case callService(String, JSONValue)
    }

    public enum CommandFailure: Error, Sendable {
        case offline
        case unknownService(String)
        case invalid([ValueError])
        case noThingModel
        case timedOut
    }

    /// Sends a property set or a service call to a connected device and waits for its reply
    /// (correlated by request id) up to `timeout`. Values are checked against the thing model first.
    public func send(_ command: Command, productKey: String, deviceName: String, timeout: Duration) async throws(CommandFailure) -> JSONValue {
        guard let model = await model(for: productKey) else { throw .noThingModel }
        let topic: String, method: String, params: JSONValue
        switch command {
        case let .setProperties(values):
            let faults = model.validateProperties(values, writing: true)
            if !faults.isEmpty { throw .invalid(faults) }
            (topic, method, params) = ("/sys/\(productKey)/\(deviceName)/thing/service/property/set", "thing.service.property.set", values)
        case let .callService(identifier, values):
            guard let service = model.service(identifier), !["set", "get"].contains(identifier) else { throw .unknownService(identifier) }
            let faults = model.validate(fields: service.inputData, values, requireAll: true)
            if !faults.isEmpty { throw .invalid(faults) }
            (topic, method, params) = ("/sys/\(productKey)/\(deviceName)/thing/service/\(identifier)", service.method, values)
        }
        guard let clientId = devices.withLock({ $0.first { $0.value.productKey == productKey && $0.value.deviceName == deviceName }?.key }),
              let broker = broker.withLock({ $0 })
        else { throw .offline }
        let id = String(nextRequestId.add(1, ordering: .relaxed).oldValue)
        let key = "\(productKey)/\(deviceName)/\(id)"
        let request = JSONValue.object(["id": .string(id), "version": .string("1.0"), "params": params, "method": .string(method)]).serialized()
        let reply: JSONValue? = await withCheckedContinuation { continuation in
            pending.withLock { $0[key] = continuation }
            Task {
                await broker.send(Publish(topic: topic, payload: ByteBuffer(bytes: request), qos: .atMostOnce), to: clientId)
                try? await Task.sleep(for: timeout)
                self.pending.withLock { $0.removeValue(forKey: key) }?.resume(returning: nil)
            }
        }
        guard let reply else { throw .timedOut }
        return reply
    }

    /// A device's reply to a command: hands it to the waiting caller, if any is still waiting.
    private func resolve(productKey: String, deviceName: String, payload: Data) {
        guard let reply = JSONValue.parse(payload) else { return }
        let id: String
        switch reply["id"] {
        case let .string(s)?: id = s
        case let .int(i)?: id = String(i)
        default: return
        }
        pending.withLock { $0.removeValue(forKey: "\(productKey)/\(deviceName)/\(id)") }?.resume(returning: reply)
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
