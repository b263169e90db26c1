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
import Synchronization

extension Product {
    /// The product's thing model as stored, read under the rules it was accepted with.
    package var thingModel: ThingModel? { ThingModel.parse(stored: Data(tslJson.utf8)) }
}

extension Device {
    /// How the broker side knows a device: "productKey/deviceName".
    package var key: String { Self.key(productKey, deviceName) }
    package static func key(_ productKey: String, _ deviceName: String) -> String { productKey + "/" + deviceName }
}

/// One signed-in device connection and, when the device is a gateway, the sub-devices it serves:
/// those attached to it (its topology) and those signed in through it now.
package final class DeviceSession: Sendable {
    package let clientId: String
    package let device: Device
    package let isGateway: Bool

    package struct SubDevices {
        /// Attached sub-devices by key: the gateway may subscribe to and publish on their topics.
        package var attached: Set<String> = []
        /// Signed-in sub-devices by key: what the gateway publishes for them is understood.
        package var online: [String: Device] = [:]
    }

    package let state = Mutex(SubDevices())

    /// Where the answer to the device's own property posts goes: made once, not with every post.
    package let propertyPostReply: String

    package init(clientId: String, device: Device, isGateway: Bool) {
        self.clientId = clientId
        self.device = device
        self.isGateway = isGateway
        propertyPostReply = "/sys/\(device.productKey)/\(device.deviceName)/thing/event/property/post_reply"
    }

    /// Whether a topic (`publishing`) or a subscription filter is one an attached sub-device's own
    /// connection could use, among those a gateway speaks on for it (`AlinkTopicPolicy.device(in:)`):
    /// its system and custom topics, its RRPC calls and its firmware. Its policy decides, as for
    /// the sub-device itself.
    package func serves(_ topic: String, publishing: Bool) -> Bool {
        guard let (pk, dn) = AlinkTopicPolicy.device(in: topic),
            state.withLock({ $0.attached.contains(Device.key(pk, dn)) })
        else { return false }
        let policy = AlinkTopicPolicy(productKey: pk, deviceName: dn)
        return publishing ? policy.mayPublish(to: topic) : policy.maySubscribe(to: topic)
    }
}

/// A gateway's connection may use its own topics and those of the sub-devices attached to it.
/// Whether a sub-device is signed in is checked per message, with an Alink reply, so that one
/// sub-device signed out never costs the gateway its connection.
package struct GatewayPolicy: MQTTClientPolicy {
    package let own: AlinkTopicPolicy
    package let session: DeviceSession

    package func mayPublish(to topic: String) -> Bool {
        own.mayPublish(to: topic) || session.serves(topic, publishing: true)
    }
    package func maySubscribe(to filter: String) -> Bool {
        own.maySubscribe(to: filter) || session.serves(filter, publishing: false)
    }
}

extension DeviceGateway {
    /// A failure for one sub-device in a gateway's request.
    package struct SubDeviceFault: Error {
        package var productKey: String
        package var deviceName: String
        package var code: Int
        package var message: String

        package var json: JSONValue {
            .object([
                "productKey": .string(productKey), "deviceName": .string(deviceName), "code": .int(Int64(code)),
                "message": .string(message),
            ])
        }
    }

    /// Answers a gateway's topology and sub-device session requests on the request topic + `_reply`.
    /// Each request is all or nothing: when one sub-device fails, none is changed and the reply
    /// lists the failures.
    package func handle(_ request: GatewayRequest, from session: DeviceSession, topic: String, payload: Data)
        async throws
    {
        let gateway = session.device
        guard let alink = AlinkRequest.parse(payload) else {
            await reply(
                to: session.clientId, topic: topic + "_reply",
                AlinkCode.reply(
                    id: "0", code: AlinkCode.invalidRequest, message: "request is not Alink JSON with id and params"))
            return
        }
        func answer(_ code: Int, _ message: String, _ data: JSONValue = .object([:])) async {
            await reply(
                to: session.clientId, topic: topic + "_reply",
                AlinkCode.reply(id: alink.id, code: code, message: message, data: data))
        }
        guard session.isGateway else {
            await answer(
                AlinkCode.notGateway,
                "\(gateway.productKey) is not a gateway product; only a gateway's devices bring sub-devices in")
            return
        }
        let actor = Principal(accountId: nil, name: "gateway \(gateway.key)")
        do {
            switch request {
            case .topologyGet:
                let attached = try await store.subDevices(of: gateway)
                await answer(AlinkCode.success, "success", .array(attached.map(Self.identity)))

            case .topologyAdd:
                let entries = try Self.entries(alink.params)
                var subs: [Device] = []
                var faults: [SubDeviceFault] = []
                for entry in entries {
                    do {
                        subs.append(try await checkSignedSubDevice(entry, gateway: gateway, requireAttached: false))
                    } catch { faults.append(error) }
                }
                guard faults.isEmpty else { return await refuse(faults, answer) }
                try await store.attachSubDevices(subs, to: gateway, actor: actor)
                // A sub-device taken from another gateway leaves that gateway's session too.
                for sub in subs where sub.gatewayId != nil && sub.gatewayId != gateway.id {
                    await detachEverywhere(sub, except: session)
                }
                session.state.withLock { $0.attached.formUnion(subs.map(\.key)) }
                logger.info("sub-devices attached", metadata: ["gateway": "\(gateway.key)", "count": "\(subs.count)"])
                await answer(AlinkCode.success, "success", .array(subs.map(Self.identity)))

            case .topologyDelete:
                let keys = try Self.entries(alink.params).map(Self.named)
                var subs: [Device] = []
                for (pk, dn) in keys {
                    if let sub = try await store.device(productKey: pk, deviceName: dn),
                        sub.communityId == gateway.communityId
                    {
                        subs.append(sub)
                    }
                }
                let detached = try await store.detachSubDevices(subs, from: gateway, actor: actor)
                for sub in detached {
                    let wasOnline = session.state.withLock { state in
                        state.attached.remove(sub.key)
                        return state.online.removeValue(forKey: sub.key) != nil
                    }
                    if wasOnline { await wentOffline(sub, from: session.clientId) }
                }
                await answer(AlinkCode.success, "success", .array(detached.map(Self.identity)))

            case .register:
                let entries = try Self.entries(alink.params)
                var subs: [(device: Device, secret: String)] = []
                var faults: [SubDeviceFault] = []
                for entry in entries {
                    do { subs.append(try await checkRegistrable(entry, gateway: gateway)) } catch {
                        faults.append(error)
                    }
                }
                guard faults.isEmpty else { return await refuse(faults, answer) }
                // A secret given out is a sensitive read: on the audit log, with the gateway as actor.
                try await store.recordSecretsIssued(subs.map(\.device), to: gateway, actor: actor)
                logger.info(
                    "sub-device secrets issued", metadata: ["gateway": "\(gateway.key)", "count": "\(subs.count)"])
                await answer(
                    AlinkCode.success, "success",
                    .array(
                        subs.map { sub in
                            .object([
                                "iotId": .string(sub.device.id), "productKey": .string(sub.device.productKey),
                                "deviceName": .string(sub.device.deviceName),
                                "deviceSecret": .string(sub.secret),
                            ])
                        }))

            case let .login(batch):
                let entries: [JSONValue]
                let method: String?
                if batch {
                    guard case let .array(list)? = alink.params["deviceList"] else {
                        throw SubDeviceFault(
                            productKey: "", deviceName: "", code: AlinkCode.invalidRequest,
                            message: "params.deviceList must be a list")
                    }
                    entries = list
                    method = alink.params["signMethod"]?.text
                } else {
                    entries = [alink.params]
                    method = nil
                }
                try Self.checkBatchSize(entries.count)
                var subs: [Device] = []
                var faults: [SubDeviceFault] = []
                for entry in entries {
                    do {
                        subs.append(
                            try await checkSignedSubDevice(
                                entry, gateway: gateway, requireAttached: true, signMethod: method))
                    } catch { faults.append(error) }
                }
                guard faults.isEmpty else { return await refuse(faults, answer) }
                let online = session.state.withLock { $0.online.count }
                guard online + subs.count <= Self.subDevicesPerGateway else {
                    return await answer(
                        AlinkCode.tooMany,
                        "a gateway serves at most \(Self.subDevicesPerGateway) sub-devices online at once")
                }
                session.state.withLock { state in for sub in subs { state.online[sub.key] = sub } }
                for sub in subs { await cameOnline(sub, through: session.clientId) }
                await answer(
                    AlinkCode.success, "success",
                    batch ? .array(subs.map(Self.identity)) : (subs.first.map(Self.identity) ?? .object([:])))

            case let .logout(batch):
                let entries = try batch ? Self.entries(alink.params) : [alink.params]
                try Self.checkBatchSize(entries.count)
                let keys = try entries.map(Self.named)
                var done: [JSONValue] = []
                for (pk, dn) in keys {
                    guard let sub = session.state.withLock({ $0.online.removeValue(forKey: Device.key(pk, dn)) }) else {
                        continue
                    }
                    await wentOffline(sub, from: session.clientId)
                    done.append(Self.identity(sub))
                }
                await answer(AlinkCode.success, "success", batch ? .array(done) : (done.first ?? .object([:])))
            }
        } catch let fault as SubDeviceFault {
            await answer(fault.code, fault.message)
        }
    }

    private func refuse(_ faults: [SubDeviceFault], _ answer: (Int, String, JSONValue) async -> Void) async {
        logger.notice(
            "gateway request refused",
            metadata: ["faults": "\(faults.map { "\($0.productKey)/\($0.deviceName): \($0.message)" })"])
        await answer(
            faults[0].code, faults.map { "\($0.productKey)/\($0.deviceName): \($0.message)" }.joined(separator: "; "),
            .array(faults.map(\.json)))
    }

    /// Checks one sub-device as a gateway presents it: known and in the gateway's community,
    /// enabled, not the gateway, signed with its own secret recently, and for a login, attached.
    private func checkSignedSubDevice(
        _ entry: JSONValue, gateway: Device, requireAttached: Bool, signMethod: String? = nil
    ) async throws(SubDeviceFault) -> Device {
        let pk = entry["productKey"]?.text ?? ""
        let dn = entry["deviceName"]?.text ?? ""
        func fault(_ code: Int, _ message: String) -> SubDeviceFault {
            SubDeviceFault(productKey: pk, deviceName: dn, code: code, message: message)
        }
        let signIn: SubDeviceSignIn
        do { signIn = try SubDeviceSignIn(entry, signMethod: signMethod) } catch {
            throw fault(AlinkCode.invalidRequest, error.description)
        }
        guard Device.key(pk, dn) != gateway.key else {
            throw fault(AlinkCode.attachSelf, "a gateway cannot be its own sub-device")
        }
        guard let sub = try? await store.device(productKey: pk, deviceName: dn), sub.communityId == gateway.communityId,
            let secret = try? store.deviceSecret(sub)
        else { throw fault(AlinkCode.unknownDevice, "no such device") }
        guard sub.status != .disabled else { throw fault(AlinkCode.deviceDisabled, "the device is disabled") }
        guard signIn.verify(secret: secret) else { throw fault(AlinkCode.unauthorized, "wrong signature") }
        guard signIn.isFresh() else { throw fault(AlinkCode.unauthorized, "timestamp outside the allowed window") }
        if requireAttached, sub.gatewayId != gateway.id {
            throw fault(AlinkCode.notAttached, "not attached to this gateway (add its topology first)")
        }
        return sub
    }

    /// Checks one sub-device a gateway asks the secret of (Alink's sub-device registration): it
    /// was registered in the gateway's community, its product allows this, it is enabled, and
    /// it has never signed in, or is already this gateway's. A device that has been in use
    /// elsewhere keeps its secret: asking for it must not be a way to take a device over.
    private func checkRegistrable(_ entry: JSONValue, gateway: Device) async throws(SubDeviceFault) -> (
        device: Device, secret: String
    ) {
        let (pk, dn) = try Self.named(entry)
        func fault(_ code: Int, _ message: String) -> SubDeviceFault {
            SubDeviceFault(productKey: pk, deviceName: dn, code: code, message: message)
        }
        guard Device.key(pk, dn) != gateway.key else {
            throw fault(AlinkCode.attachSelf, "a gateway cannot be its own sub-device")
        }
        guard let sub = try? await store.device(productKey: pk, deviceName: dn), sub.communityId == gateway.communityId,
            let secret = try? store.deviceSecret(sub)
        else {
            throw fault(
                AlinkCode.unknownDevice, "no such device; register it first (linli device create, or the import)")
        }
        guard await product(for: pk)?.dynamicRegistration == true else {
            throw fault(AlinkCode.unauthorized, "the product does not let gateways ask for its devices' secrets")
        }
        guard sub.status != .disabled else { throw fault(AlinkCode.deviceDisabled, "the device is disabled") }
        guard sub.status == .inactive || sub.gatewayId == gateway.id else {
            throw fault(
                AlinkCode.unauthorized,
                "the device has signed in before, not through this gateway; its secret is not given out again")
        }
        return (sub, secret)
    }

    /// A sub-device another gateway took over: its old gateway's connection no longer serves it.
    /// It is told so (`thing.topo.change`, deleted), as Alibaba tells a gateway.
    private func detachEverywhere(_ sub: Device, except keep: DeviceSession) async {
        let others = sessionsServing(sub.key).filter { $0 !== keep }
        for other in others {
            let wasOnline = other.state.withLock { state in
                state.attached.remove(sub.key)
                return state.online.removeValue(forKey: sub.key) != nil
            }
            if wasOnline { await wentOffline(sub, from: other.clientId) }
            await tellTopologyChange(.deleted, [sub], to: other)
        }
    }

    /// What happened to sub-devices, as `thing.topo.change` tells their gateway.
    public enum TopologyChange: Int64, Sendable {
        case created = 0, deleted = 1, enabled = 2, disabled = 8
    }

    /// Tells a gateway's connection what happened to some of its sub-devices, so that it stops
    /// (or starts again) speaking for them rather than learn it from refusals.
    package func tellTopologyChange(_ change: TopologyChange, _ subs: [Device], to session: DeviceSession) async {
        guard !subs.isEmpty, let broker = broker.withLock({ $0 }) else { return }
        let id = String(nextRequestId.add(1, ordering: .relaxed).oldValue)
        let notice = JSONValue.object([
            "id": .string(id), "version": .string("1.0"), "method": .string("thing.topo.change"),
            "params": .object(["status": .int(change.rawValue), "subList": .array(subs.map(Self.identity))]),
        ])
        await broker.send(
            Publish(
                topic: "/sys/\(session.device.productKey)/\(session.device.deviceName)/thing/topo/change",
                payload: ByteBuffer(bytes: notice.serialized()), qos: .atLeastOnce), to: session.clientId)
    }

    /// An operator disabled or enabled a sub-device: its gateway, when connected, is told.
    public func subDevice(_ sub: Device, was change: TopologyChange) async {
        guard let gatewayId = sub.gatewayId, let gateway = try? await store.device(id: gatewayId),
            let clientId = clientId(productKey: gateway.productKey, deviceName: gateway.deviceName),
            let session = session(clientId), session.device.id == gatewayId
        else { return }
        await tellTopologyChange(change, [sub], to: session)
    }

    package static func identity(_ device: Device) -> JSONValue {
        .object(["productKey": .string(device.productKey), "deviceName": .string(device.deviceName)])
    }

    /// Topology requests carry a list of sub-devices; one object alone is taken as a list of one.
    package static func entries(_ params: JSONValue) throws(SubDeviceFault) -> [JSONValue] {
        let list: [JSONValue]
        switch params {
        case let .array(items): list = items
        case .object: list = [params]
        default:
            throw SubDeviceFault(
                productKey: "", deviceName: "", code: AlinkCode.invalidRequest,
                message: "params must be a list of sub-devices")
        }
        try checkBatchSize(list.count)
        return list
    }

    package static func checkBatchSize(_ count: Int) throws(SubDeviceFault) {
        guard count > 0 else {
            throw SubDeviceFault(
                productKey: "", deviceName: "", code: AlinkCode.invalidRequest, message: "no sub-devices given")
        }
        guard count <= subDeviceBatchLimit else {
            throw SubDeviceFault(
                productKey: "", deviceName: "", code: AlinkCode.tooMany,
                message: "at most \(subDeviceBatchLimit) sub-devices in one request, got \(count)")
        }
    }

    package static func named(_ entry: JSONValue) throws(SubDeviceFault) -> (String, String) {
        guard let pk = entry["productKey"]?.text, let dn = entry["deviceName"]?.text, !pk.isEmpty, !dn.isEmpty else {
            throw SubDeviceFault(
                productKey: "", deviceName: "", code: AlinkCode.invalidRequest,
                message: "each sub-device needs productKey and deviceName")
        }
        return (pk, dn)
    }
}

// MARK: a gateway's pack post

extension DeviceGateway {
    /// `thing.event.property.pack.post`: a gateway's own values and events and its signed-in
    /// sub-devices' in one message, `{"properties": {"Temp": {"value": …, "time": …}}, "events":
    /// {…}, "subDevices": [{"identity": {"productKey": …, "deviceName": …}, "properties": {…},
    /// "events": {…}}]}`. Each device's part is checked against its own thing model as a batch post
    /// is; the whole message is stored in one commit, or (with any fault) nothing is, and the
    /// reply names every fault with its place.
    package func packPost(from session: DeviceSession, message: Publish) async -> PublishCompletion {
        let now = nowMillis()
        let gateway = session.device
        func refuse(_ id: String, _ code: Int, _ reason: String, wantsReply: Bool = true) -> PublishCompletion {
            let refused = telemetry.enqueue(
                DeviceReport(
                    deviceId: gateway.id, communityId: gateway.communityId, productKey: gateway.productKey,
                    deviceName: gateway.deviceName, receivedAt: now, content: .refused(reason: reason)))
            let answer = AlinkCode.reply(id: id, code: code, message: reason)
            return .whenDone(
                of: StoredReport(receipt: refused), reply: wantsReply ? Self.reply(to: message, answer) : nil)
        }
        guard let request = AlinkRequest.parse(Data(message.payload.readableBytesView)) else {
            return refuse("0", AlinkCode.invalidRequest, "request is not Alink JSON with id and params")
        }
        guard case let .object(params) = request.params else {
            return refuse(
                request.id, AlinkCode.invalidValue, "params: must be an object with properties, events and subDevices",
                wantsReply: request.wantsReply)
        }
        var faults: [ValueError] = []
        var parts: [(device: Device, content: DeviceReport.Content)] = []
        var notSignedIn = false
        /// One device's properties and events, each a single `{value, time}`, checked as a batch post of one each.
        func take(_ section: [String: JSONValue], of device: Device, at path: String, allowed: Set<String>) async {
            for name in section.keys.sorted() where !allowed.contains(name) {
                faults.append(
                    ValueError(path: path + name, kind: .unknownIdentifier, reason: "is not properties or events"))
            }
            let batch = section.filter { $0.key == "properties" || $0.key == "events" }
            guard !batch.isEmpty else { return }
            guard let model = await model(for: device.productKey) else {
                faults.append(
                    ValueError(
                        path: path.isEmpty ? "params" : String(path.dropLast()), kind: .missing,
                        reason: "the product has no thing model"))
                return
            }
            let (found, content) = Self.batch(.object(batch), model: model, receivedAt: now, listed: false)
            faults += found.map { ValueError(path: path + $0.path, kind: $0.kind, reason: $0.reason) }
            if let content { parts.append((device, content)) }
        }
        await take(params, of: gateway, at: "", allowed: ["properties", "events", "subDevices"])
        if let listed = params["subDevices"] {
            if case let .array(subDevices) = listed, subDevices.count <= Self.subDeviceBatchLimit {
                for (i, item) in subDevices.enumerated() {
                    let path = "subDevices[\(i)]"
                    guard case let .object(section) = item, case let .string(pk)? = section["identity"]?["productKey"],
                        case let .string(dn)? = section["identity"]?["deviceName"]
                    else {
                        faults.append(
                            ValueError(
                                path: path + ".identity", kind: .missing,
                                reason: "must name the sub-device's productKey and deviceName"))
                        continue
                    }
                    guard let sub = session.state.withLock({ $0.online[Device.key(pk, dn)] }) else {
                        notSignedIn = true
                        faults.append(
                            ValueError(
                                path: path + ".identity", kind: .unknownIdentifier,
                                reason: "\(pk)/\(dn) is not signed in through this gateway"))
                        continue
                    }
                    await take(section, of: sub, at: path + ".", allowed: ["identity", "properties", "events"])
                }
            } else {
                faults.append(
                    ValueError(
                        path: "subDevices", kind: .outOfRange,
                        reason: "must be an array of at most \(Self.subDeviceBatchLimit) sub-devices"))
            }
        }
        if faults.isEmpty, parts.isEmpty {
            faults.append(ValueError(path: "params", kind: .missing, reason: "holds no values or events"))
        }
        if let first = faults.first {
            let code =
                notSignedIn
                ? AlinkCode.notSignedIn
                : first.kind == .unknownIdentifier ? AlinkCode.unknownIdentifier : AlinkCode.invalidValue
            return refuse(
                request.id, code, faults.map(\.description).joined(separator: "; "), wantsReply: request.wantsReply)
        }
        let stored = telemetry.enqueue(
            together: parts.map { part in
                DeviceReport(
                    deviceId: part.device.id, communityId: part.device.communityId, productKey: part.device.productKey,
                    deviceName: part.device.deviceName, receivedAt: now, content: part.content)
            })
        for part in parts { observe(part.content, from: part.device, at: now) }
        return .whenDone(
            of: StoredReport(receipt: stored),
            reply: request.wantsReply ? Self.reply(to: message, AlinkCode.successBytes(id: request.id)) : nil)
    }
}
