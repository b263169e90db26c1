import Foundation
import LinliAlink
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliMQTT
import LinliStorage
import LinliThings
import NIOCore

/// Devices' shadow documents (Alibaba's device shadow) over MQTT: a device's requests on
/// `/shadow/update/{pk}/{dn}`, answered on `/shadow/get/{pk}/{dn}`, and the platform's changes
/// pushed there as `control`.
extension DeviceGateway {
    /// A device's request to its own shadow document. A change is committed before its answer
    /// and its PUBACK; a refused one is answered with Alibaba's error code and changes nothing.
    package func shadowRequest(from device: Device, message: Publish) async throws -> PublishCompletion {
        let now = Int64(nowMillis() / 1000)
        let answer: Data
        switch ShadowRequest.parse(Data(message.payload.readableBytesView)) {
        case let .failure(fault):
            answer = AlinkShadow.refused(fault, at: now)
        case .success(.get):
            answer = AlinkShadow.document(try await shadowDocument(device), method: "reply", at: now)
        case let .success(request):
            do {
                let stored = try await store.changeShadowDocument(device, actor: nil) { json in
                    let next = try Self.document(json).applying(request, at: now)
                    return (String(decoding: next.json.serialized(), as: UTF8.self), next.version)
                }
                answer = AlinkShadow.accepted(version: Self.document(stored).version, at: now)
            } catch let fault as ShadowFault {
                answer = AlinkShadow.refused(fault, at: now)
            }
        }
        // Asking counts as the device being heard from, as a reply to a command does.
        let seen = telemetry.enqueue(
            DeviceReport(
                deviceId: device.id, communityId: device.communityId, productKey: device.productKey,
                deviceName: device.deviceName, receivedAt: nowMillis(), content: .seen))
        return .whenDone(
            of: StoredReport(receipt: seen),
            reply: Publish(
                topic: AlinkShadow.getTopic(device.productKey, device.deviceName), payload: ByteBuffer(bytes: answer),
                qos: .atMostOnce))
    }

    /// A device's shadow document; an empty one at version 0 before its first change.
    public func shadowDocument(_ device: Device) async throws -> ShadowDocument {
        Self.document(try await store.shadowDocument(device))
    }

    /// Sends a changed document to its device as `control`, at QoS 1 as Alibaba's devices
    /// subscribe; false when the device is not connected (it asks with `get` when it returns).
    public func pushShadowDocument(_ device: Device, _ document: ShadowDocument) async -> Bool {
        guard let clientId = clientId(productKey: device.productKey, deviceName: device.deviceName),
            let broker = broker.withLock({ $0 })
        else { return false }
        let payload = AlinkShadow.document(document, method: "control", at: Int64(nowMillis() / 1000))
        await broker.send(
            Publish(
                topic: AlinkShadow.getTopic(device.productKey, device.deviceName), payload: ByteBuffer(bytes: payload),
                qos: .atLeastOnce), to: clientId)
        return true
    }

    /// The stored JSON read back; what Linli wrote itself, so anything else is an empty document.
    package static func document(_ json: String?) -> ShadowDocument {
        json.flatMap { JSONValue.parse(Data($0.utf8)) }.flatMap(ShadowDocument.init(json:)) ?? ShadowDocument()
    }
}
