import Foundation
import LinliAlink
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
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
    package let store: Store
    package let logger: Logger
    package let broker = Mutex<MQTTBroker?>(nil)
    /// Signed-in connections by MQTT client id, set at sign-in.
    private let sessions = Mutex<[String: DeviceSession]>([:])
    /// Which connection reaches an online device ("pk/dn" → client id): its own, or its gateway's.
    private let routes = Mutex<[String: String]>([:])
    private let products = Mutex<[String: Product]>([:])
    private let models = Mutex<[String: ThingModel]>([:])
    /// Commands sent to devices and waiting for their reply, by `{pk}/{dn}/{request id}`.
    private let pending = Mutex<[String: WaitingCommand]>([:])
    private enum CommandOutcome { case replied(JSONValue), timedOut, deviceLeft }
    private struct WaitingCommand {
        package let continuation: CheckedContinuation<CommandOutcome, Never>
        /// A sync service call's RRPC topic, the only place its reply is taken from (as on
        /// Alibaba's platform); nil for a command answered on its `…_reply` topic.
        package let rrpcTopic: String?
    }
    package let nextRequestId = Atomic<Int>(1)
    /// Where devices download firmware from (`device-url`, or the HTTP address); nil when Linli
    /// cannot tell, and then no upgrade is offered.
    public let downloadBase = Mutex<String?>(nil)
    /// Whether the broker listens: after a start it first reads back its sessions and messages,
    /// and `/readyz` says ready only once devices can connect.
    public let listening = Atomic<Bool>(false)
    /// Products whose devices may have open firmware upgrades, read once and added to as upgrades
    /// start (it may hold products whose upgrades have all ended since: that costs one lookup).
    /// A sign-in of any other product's device looks for no upgrade.
    package let upgradingProducts = Mutex<(read: Set<String>?, started: Set<String>)>((nil, []))

    /// Makes what devices report durable before they are acknowledged.
    package let telemetry: TelemetryWriter

    /// Sub-devices in one topology or login request, and online through one gateway, at most.
    package static let subDeviceBatchLimit = 50
    package static let subDevicesPerGateway = 2_000

    /// The community's rules, fed with what devices post and how their status changes.
    package let rules: (any DeviceWatcher)?

    /// Failed sign-ins of integration accounts (devices sign with HMAC and are not throttled here).
    package let signInThrottle: LoginThrottle

    package init(store: Store, logger: Logger, rules: (any DeviceWatcher)? = nil) {
        self.store = store
        self.logger = logger
        self.rules = rules
        telemetry = TelemetryWriter(store: store, logger: logger)
        signInThrottle = LoginThrottle(logger: logger)
    }

    package func attach(_ broker: MQTTBroker) { self.broker.withLock { $0 = broker } }

    package func authenticate(_ connect: Connect, connection: MQTTConnectionInfo) async -> MQTTAuthentication {
        let remote = connection.remote
        guard let signIn = AlinkSignIn(connect) else {
            return await IntegrationAuthenticator(store: store, throttle: signInThrottle, logger: logger).authenticate(
                connect, connection: connection)
        }
        // securemode says how the device meant to connect: 2 over TLS, 3 over plain TCP. Any other
        // pairing is a misconfigured device or a downgrade, and is refused before the secret is used.
        guard signIn.secureMode == (connection.secure ? 2 : 3) else {
            logger.notice(
                "device sign-in refused: securemode does not fit the connection (2 is for TLS, 3 for plain TCP)",
                metadata: [
                    "pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)", "securemode": "\(signIn.secureMode)",
                    "tls": "\(connection.secure)", "remote": "\(remote ?? "-")",
                ])
            return .refused(.notAuthorized)
        }
        // A registry that cannot be read is the server's fault, not the device's: CONNACK 3 (try
        // again), never "bad user name or password", which a device may take as final.
        let found: Device?
        do {
            found = try await store.device(productKey: signIn.productKey, deviceName: signIn.deviceName)
        } catch {
            logger.error(
                "device sign-in failed: the registry could not be read",
                metadata: ["pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)", "error": "\(error)"])
            return .refused(.serverUnavailable)
        }
        guard let device = found, let secret = try? store.deviceSecret(device)
        else {
            logger.notice(
                "device sign-in refused: unknown device",
                metadata: ["pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)", "remote": "\(remote ?? "-")"])
            return .refused(.badUsernameOrPassword)
        }
        guard signIn.verify(secret: secret) else {
            logger.notice(
                "device sign-in refused: wrong signature",
                metadata: ["pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)"])
            return .refused(.badUsernameOrPassword)
        }
        guard signIn.isFresh() else {
            logger.notice(
                "device sign-in refused: timestamp outside the allowed window",
                metadata: ["pk": "\(signIn.productKey)", "dn": "\(signIn.deviceName)"])
            return .refused(.notAuthorized)
        }
        guard device.status != .disabled else { return .refused(.notAuthorized) }
        let isGateway = await product(for: device.productKey)?.nodeType == .gateway
        let session = DeviceSession(clientId: connect.clientId, device: device, isGateway: isGateway)
        if isGateway, let attached = try? await store.subDevices(of: device) {
            session.state.withLock { $0.attached = Set(attached.map(\.key)) }
        }
        // The same client id again is a session takeover: the sub-devices the old connection
        // served must sign in again on the new one.
        if let replaced = sessions.withLock({ $0.updateValue(session, forKey: connect.clientId) }) {
            await signOutSubDevices(of: replaced)
        }
        return .accepted(isGateway ? GatewayPolicy(own: signIn.policy, session: session) : signIn.policy)
    }

    package func presence(clientId: String, connected: Bool) async {
        if connected {
            guard let session = sessions.withLock({ $0[clientId] }) else { return }
            await cameOnline(session.device, through: clientId)
            return
        }
        guard let session = sessions.withLock({ $0.removeValue(forKey: clientId) }) else { return }
        await signOutSubDevices(of: session)
        await wentOffline(session.device, from: clientId)
    }

    /// Marks a device online through a connection (its own or its gateway's); an earlier
    /// connection of the same device is ended, as a device is online once.
    package func cameOnline(_ device: Device, through clientId: String) async {
        let previous = routes.withLock { $0.updateValue(clientId, forKey: device.key) }
        if let previous, previous != clientId { await endRoute(of: device, at: previous) }
        do {
            try await store.setDeviceStatus(device, .online)
        } catch {
            logger.error("device status not stored", metadata: ["error": "\(error)"])
        }
        rules?.observe(.status("online"), from: device)
        // Desired values set while the device was away go to it now that it is back, and so do
        // firmware upgrades started meanwhile.
        Task {
            await self.deliverDesired(device)
            await self.offerUpgrades(device)
        }
    }

    /// Marks a device offline unless a newer connection has taken it over meanwhile.
    package func wentOffline(_ device: Device, from clientId: String) async {
        let wasCurrent = routes.withLock { routes in
            guard routes[device.key] == clientId else { return false }
            routes.removeValue(forKey: device.key)
            return true
        }
        guard wasCurrent else { return }
        // Its commands cannot be answered now: their callers hear so at once, not at the timeout.
        let prefix = "\(device.productKey)/\(device.deviceName)/"
        let orphaned = pending.withLock { pending in
            let keys = pending.keys.filter { $0.hasPrefix(prefix) }
            return keys.compactMap { pending.removeValue(forKey: $0) }
        }
        for waiting in orphaned { waiting.continuation.resume(returning: .deviceLeft) }
        do {
            try await store.setDeviceStatus(device, .offline)
        } catch {
            logger.error("device status not stored", metadata: ["error": "\(error)"])
        }
        rules?.observe(.status("offline"), from: device)
    }

    /// Ends a device's presence on a connection it has left: its own connection is closed; through
    /// a gateway, the gateway stops serving it.
    private func endRoute(of device: Device, at clientId: String) async {
        guard let session = sessions.withLock({ $0[clientId] }) else { return }
        if session.device.key == device.key {
            logger.info(
                "device signed in again: ending its earlier connection",
                metadata: ["pk": "\(device.productKey)", "dn": "\(device.deviceName)"])
            _ = await broker.withLock({ $0 })?.disconnect(clientId: clientId)
        } else {
            _ = session.state.withLock { $0.online.removeValue(forKey: device.key) }
        }
    }

    /// A signed-in connection's session.
    package func session(_ clientId: String) -> DeviceSession? {
        sessions.withLock { $0[clientId] }
    }

    /// Gateway connections that have a sub-device attached.
    package func sessionsServing(_ key: String) -> [DeviceSession] {
        sessions.withLock { Array($0.values) }.filter {
            $0.isGateway && $0.state.withLock { $0.attached.contains(key) }
        }
    }

    private func signOutSubDevices(of session: DeviceSession) async {
        let online = session.state.withLock { state in
            defer { state.online = [:] }
            return Array(state.online.values)
        }
        for sub in online { await wentOffline(sub, from: session.clientId) }
    }

    /// Sends the desired values a device has not yet accepted as one property set; marks them
    /// delivered when the device answers with success. Returns whether they were delivered.
    @discardableResult
    public func deliverDesired(_ device: Device, timeout: Duration = .seconds(10)) async -> Bool {
        guard let waiting = try? await store.undeliveredDesired(device), !waiting.isEmpty else { return false }
        var values: [String: JSONValue] = [:]
        for v in waiting { values[v.identifier] = JSONValue.parse(Data(v.value.utf8)) ?? .null }
        do {
            let reply = try await send(
                .setProperties(.object(values)), productKey: device.productKey, deviceName: device.deviceName,
                timeout: timeout)
            guard case let .int(code)? = reply["code"], code == Int64(AlinkCode.success) else {
                logger.notice(
                    "device refused desired values",
                    metadata: ["pk": "\(device.productKey)", "dn": "\(device.deviceName)", "reply": "\(reply)"])
                return false
            }
            try await store.markDesiredDelivered(device, waiting)
            return true
        } catch {
            logger.info(
                "desired values wait for the device",
                metadata: ["pk": "\(device.productKey)", "dn": "\(device.deviceName)", "reason": "\(error)"])
            return false
        }
    }

    /// Takes a device off the broker (it was disabled): its connection is closed, or its gateway
    /// stops serving it. False when it was not online.
    @discardableResult
    public func disconnect(productKey: String, deviceName: String) async -> Bool {
        let key = Device.key(productKey, deviceName)
        guard let clientId = routes.withLock({ $0[key] }), let session = sessions.withLock({ $0[clientId] }) else {
            return false
        }
        if session.device.key == key {
            guard let broker = broker.withLock({ $0 }) else { return false }
            return await broker.disconnect(clientId: clientId)
        }
        guard let sub = session.state.withLock({ $0.online.removeValue(forKey: key) }) else { return false }
        await wentOffline(sub, from: clientId)
        return true
    }

    public func isConnected(productKey: String, deviceName: String) -> Bool {
        routes.withLock { $0[Device.key(productKey, deviceName)] != nil }
    }

    package func clientId(productKey: String, deviceName: String) -> String? {
        routes.withLock { $0[Device.key(productKey, deviceName)] }
    }

    package func product(for productKey: String) async -> Product? {
        if let cached = products.withLock({ $0[productKey] }) { return cached }
        guard let product = try? await store.product(key: productKey) else { return nil }
        products.withLock { $0[productKey] = product }
        return product
    }

    package func model(for productKey: String) async -> ThingModel? {
        if let cached = models.withLock({ $0[productKey] }) { return cached }
        guard let product = await product(for: productKey), let model = product.thingModel else { return nil }
        models.withLock { $0[productKey] = model }
        return model
    }

    /// The fast path, on the device's connection's event loop: a property or event post from a
    /// device on its own topic (or from an online sub-device through its gateway) whose product's
    /// thing model is already loaded. It is checked, queued for the group commit and shown to the
    /// rules here; the broker acknowledges it, after the reply, once the commit is done. Nil (with
    /// nothing done) leaves the message to `handle`.
    package func handleNow(clientId: String, message: Publish) -> PublishCompletion? {
        guard let (pk, dn, kind) = AlinkTopic.parse(message.topic) else { return nil }
        switch kind {
        case .propertyPost, .eventPost: break
        default: return nil
        }
        guard let session = sessions.withLock({ $0[clientId] }),
            let device = Self.device(pk, dn, speakingThrough: session),
            let model = models.withLock({ $0[pk] })
        else { return nil }
        let ownPost = kind == .propertyPost && device.id == session.device.id
        return post(
            kind, from: device, model: model, message: message, replyTopic: ownPost ? session.propertyPostReply : nil)
    }

    /// The device a message on `pk/dn`'s topics is from: the connection's own, or a sub-device
    /// signed in through it; nil otherwise.
    private static func device(_ pk: String, _ dn: String, speakingThrough session: DeviceSession) -> Device? {
        if session.device.deviceName == dn, session.device.productKey == pk { return session.device }
        guard session.isGateway else { return nil }
        return session.state.withLock { $0.online[Device.key(pk, dn)] }
    }

    /// Handles what devices send on their own topics (and a gateway on its sub-devices'); other
    /// topics are only routed. A property or event post is checked and queued for storage here, in
    /// arrival order; the returned completion waits for its commit and replies, and the broker's
    /// PUBACK follows that, so it is never for a message a crash could lose. A gateway's topology
    /// and session requests are stored before this returns.
    package func handle(clientId: String, message: Publish) async throws -> PublishCompletion {
        guard let session = sessions.withLock({ $0[clientId] }) else { return .done }
        if let (gpk, gdn, request) = GatewayRequest.parse(message.topic) {
            guard session.device.key == Device.key(gpk, gdn) else { return .done }
            try await handle(
                request, from: session, topic: message.topic, payload: Data(message.payload.readableBytesView))
            return .done
        }
        if let call = AlinkRRPC.parseService(message.topic) {
            // A reply to a sync service call, on the call's own topic: taken as a `…_reply` is, from
            // the device or the gateway it is signed in through, and it counts as the device seen.
            guard let device = Self.device(call.productKey, call.deviceName, speakingThrough: session) else {
                return .done
            }
            // The messageId in the topic pairs it with its call; a payload that is not a JSON object
            // is no Alink reply, and its caller times out.
            if let reply = JSONValue.parse(Data(message.payload.readableBytesView)), case .object = reply {
                resolve(
                    productKey: call.productKey, deviceName: call.deviceName, id: call.messageId,
                    rrpcTopic: message.topic, reply: reply)
            }
            let stored = telemetry.enqueue(
                DeviceReport(
                    deviceId: device.id, communityId: device.communityId, productKey: device.productKey,
                    deviceName: device.deviceName, receivedAt: nowMillis(), content: .seen))
            return .whenDone(of: StoredReport(receipt: stored))
        }
        if let (pk, dn) = AlinkTime.parseRequest(message.topic) {
            // Only a device's own connection may ask (its policy allows no other device's topic).
            guard session.device.key == Device.key(pk, dn) else { return .done }
            let receivedAt = nowMillis()
            let answer = AlinkTime.response(
                to: Data(message.payload.readableBytesView), receivedAt: receivedAt, sentAt: nowMillis())
            return .replying(Self.reply(to: message, answer, topic: AlinkTime.responseTopic(pk, dn)))
        }
        if let (pk, dn) = AlinkShadow.parseUpdate(message.topic) {
            // A device's own connection only: its policy allows no other device's shadow.
            guard session.device.key == Device.key(pk, dn) else { return .done }
            return try await shadowRequest(from: session.device, message: message)
        }
        guard let (pk, dn, kind) = AlinkTopic.parse(message.topic) else { return .done }
        guard let device = Self.device(pk, dn, speakingThrough: session) else {
            // A gateway speaking for an attached sub-device that has not signed in through it.
            switch kind {
            case .propertyPost, .eventPost, .batchPost:
                let id = AlinkRequest.parse(Data(message.payload.readableBytesView))?.id ?? "0"
                return .replying(
                    Self.reply(
                        to: message,
                        AlinkCode.reply(
                            id: id, code: AlinkCode.notSignedIn,
                            message: "the sub-device \(pk)/\(dn) is not signed in through this gateway")))
            default: return .done
            }
        }
        let payload = Data(message.payload.readableBytesView)
        func report(_ content: DeviceReport.Content) -> DeviceReport {
            DeviceReport(
                deviceId: device.id, communityId: device.communityId, productKey: pk, deviceName: dn,
                receivedAt: nowMillis(), content: content)
        }
        switch kind {
        case .propertyPost, .eventPost, .batchPost:
            return post(kind, from: device, model: await model(for: pk), message: message)
        case .packPost:
            guard device.id == session.device.id else {
                let id = AlinkRequest.parse(payload)?.id ?? "0"
                return .replying(
                    Self.reply(
                        to: message,
                        AlinkCode.reply(
                            id: id, code: AlinkCode.invalidRequest,
                            message: "a pack post goes on the gateway's own topic, its sub-devices in subDevices")))
            }
            return await packPost(from: session, message: message)
        case .propertySetReply, .serviceReply:
            if let reply = JSONValue.parse(payload), let id = Self.requestId(of: reply) {
                resolve(productKey: pk, deviceName: dn, id: id, rrpcTopic: nil, reply: reply)
            }
            let stored = telemetry.enqueue(report(.seen))
            return .whenDone(of: StoredReport(receipt: stored))
        case .desiredGet, .desiredDelete:
            // Answered at once: the device asks for the shadow's desired side, or clears it.
            guard let request = AlinkRequest.parse(payload) else {
                return .replying(
                    Self.reply(
                        to: message,
                        AlinkCode.reply(
                            id: "0", code: AlinkCode.invalidRequest,
                            message: "request is not Alink JSON with id and params")))
            }
            let answer: Data
            if kind == .desiredGet {
                // `params`: the identifiers wanted, or none for all.
                var wanted = Set<String>()
                if case let .array(names) = request.params { for case let .string(n) in names { wanted.insert(n) } }
                var data: [String: JSONValue] = [:]
                for v in try await store.desiredValues(device) where wanted.isEmpty || wanted.contains(v.identifier) {
                    data[v.identifier] = .object([
                        "value": JSONValue.parse(Data(v.value.utf8)) ?? .string(v.value),
                        "version": .int(Int64(v.version)),
                    ])
                }
                answer = AlinkCode.reply(
                    id: request.id, code: AlinkCode.success, message: "success", data: .object(data))
            } else {
                // `params`: `{"identifier": {"version": n}}`; without a version, whatever version is there.
                guard case let .object(items) = request.params else {
                    return .replying(
                        Self.reply(
                            to: message,
                            AlinkCode.reply(
                                id: request.id, code: AlinkCode.invalidRequest,
                                message: "params must name the properties")))
                }
                let targets = items.map { name, spec -> (identifier: String, version: Int?) in
                    if case let .int(v)? = spec["version"] { return (name, Int(v)) }
                    return (name, nil)
                }
                try await store.deleteDesired(device, targets)
                answer = AlinkCode.success(id: request.id)
            }
            return request.wantsReply ? .replying(Self.reply(to: message, answer)) : .done
        case .firmwareInform:
            try await firmwareInformed(device, payload: payload)
            return .done
        case .firmwareProgress:
            try await upgradeProgress(device, payload: payload)
            return .done
        case .firmwareGet:
            return try await firmwareAsked(device, message: message)
        case .labelsUpdate, .labelsDelete:
            return try await labelsRequest(kind, from: device, message: message)
        case .other:
            return .done
        }
    }

    /// A device's labels set or taken out, all or none; answered on `_reply` once committed,
    /// or with 460 and the entry at fault.
    private func labelsRequest(_ kind: AlinkTopic, from device: Device, message: Publish) async throws
        -> PublishCompletion
    {
        guard let request = AlinkRequest.parse(Data(message.payload.readableBytesView)) else {
            return .replying(
                Self.reply(
                    to: message,
                    AlinkCode.reply(
                        id: "0", code: AlinkCode.invalidRequest, message: "request is not Alink JSON with id and params"
                    )))
        }
        let answer: Data
        let parsed: Result<(set: [(key: String, value: String)], remove: [String]), AlinkLabels.Fault> =
            kind == .labelsUpdate
            ? AlinkLabels.parseUpdate(request.params).map { ($0, []) }
            : AlinkLabels.parseDelete(request.params).map { ([], $0) }
        switch parsed {
        case let .failure(fault):
            answer = AlinkCode.reply(id: request.id, code: AlinkCode.invalidRequest, message: fault.description)
        case let .success(change):
            do {
                try await store.changeDeviceLabels(
                    device, set: change.set, remove: change.remove, limit: AlinkLabels.perDevice)
                answer = AlinkCode.success(id: request.id)
            } catch let StoreError.conflict(_, reason) {
                answer = AlinkCode.reply(id: request.id, code: AlinkCode.invalidRequest, message: reason)
            }
        }
        return request.wantsReply ? .replying(Self.reply(to: message, answer)) : .done
    }

    /// A property or event post: checked against the thing model, queued for the group commit,
    /// shown to the rules at once (an alarm does not wait for the commit; a post that is then not
    /// stored gets no PUBACK, and the device's resend counts on the same open alarm), and answered
    /// with its `_reply` just before the PUBACK, once stored.
    private func post(
        _ kind: AlinkTopic, from device: Device, model: ThingModel?, message: Publish, replyTopic: String? = nil
    ) -> PublishCompletion {
        let now = nowMillis()
        let answer: [UInt8]
        let content: DeviceReport.Content
        let wantsReply: Bool
        switch kind {
        case .propertyPost:
            (answer, content, wantsReply) = understand(message.payload, model: model) { model, request in
                let faults = model.validateProperties(request.params, receivedAt: now)
                return (
                    faults,
                    faults.isEmpty
                        ? .properties(Self.reportedValues(request.params, model: model, receivedAt: now)) : nil
                )
            }
        case let .eventPost(identifier):
            (answer, content, wantsReply) = understand(message.payload, model: model) { model, request in
                guard let event = model.event(identifier) else {
                    return (
                        [
                            ValueError(
                                path: identifier, kind: .unknownIdentifier, reason: "is not an event of this product")
                        ], nil
                    )
                }
                // Event posts carry `params: {"value": {...}, "time": …}`.
                let values = request.params["value"] ?? request.params
                let faults = model.validate(fields: event.outputData, values)
                let json = String(decoding: values.serialized(), as: UTF8.self)
                return (
                    faults,
                    faults.isEmpty ? .event(identifier: identifier, type: event.type.rawValue, valuesJSON: json) : nil
                )
            }
        case .batchPost:
            (answer, content, wantsReply) = understand(message.payload, model: model) { model, request in
                Self.batch(request.params, model: model, receivedAt: now)
            }
        default:
            preconditionFailure("only posts come here")
        }
        let stored = telemetry.enqueue(
            DeviceReport(
                deviceId: device.id, communityId: device.communityId, productKey: device.productKey,
                deviceName: device.deviceName, receivedAt: now, content: content))
        observe(content, from: device, at: now)
        return .whenDone(
            of: StoredReport(receipt: stored),
            reply: wantsReply ? Self.reply(to: message, answer, topic: replyTopic) : nil)
    }

    /// Shows the rules what a device posted, as soon as it is understood.
    package func observe(_ content: DeviceReport.Content, from device: Device, at now: Millis) {
        if let rules, rules.watchesDevices {
            switch content {
            case let .properties(values):
                var numbers: [String: Double] = [:]
                for v in values { if let n = v.number { numbers[v.identifier] = n } }
                rules.observe(.properties(numbers), from: device, at: now)
            case let .event(identifier, _, _):
                rules.observe(.event(identifier), from: device, at: now)
            case let .batch(values, events):
                // The rules judge the present: each property's newest value, and every event.
                var newest: [String: (time: Millis, number: Double)] = [:]
                for v in values {
                    if let n = v.number, v.time >= newest[v.identifier]?.time ?? .min {
                        newest[v.identifier] = (v.time, n)
                    }
                }
                if !newest.isEmpty { rules.observe(.properties(newest.mapValues(\.number)), from: device, at: now) }
                for event in events { rules.observe(.event(event.identifier), from: device, at: now) }
            default:
                break
            }
        }
    }

    /// A device's `…_reply` to one of its requests, at QoS 0 as Alink devices expect.
    /// `topic`: the reply topic when it is already at hand (made once per session).
    package static func reply(to message: Publish, _ payload: some Sequence<UInt8>, topic: String? = nil) -> Publish {
        Publish(topic: topic ?? message.topic + "_reply", payload: ByteBuffer(bytes: payload), qos: .atMostOnce)
    }

    /// Values and events one batch post may carry at most.
    package static let batchLimit = 1_000

    /// Checks a batch post's params, `{"properties": {"Power": [{"value": 1, "time": …}, …]},
    /// "events": {"Leak": [{"value": {…}, "time": …}, …]}}`, every value and event against the
    /// thing model and every time as in a single post; all are stored, or (with any fault) none.
    /// `listed` false: one `{"value": …, "time": …}` per identifier instead of a list (a part of a
    /// gateway's pack post).
    package static func batch(_ params: JSONValue, model: ThingModel, receivedAt: Millis, listed: Bool = true) -> (
        [ValueError], DeviceReport.Content?
    ) {
        guard case let .object(sections) = params else {
            return (
                [
                    ValueError(
                        path: "params", kind: .typeMismatch, reason: "must be an object with properties and events")
                ], nil
            )
        }
        var faults: [ValueError] = []
        var values: [ReportedValue] = []
        var events: [RaisedEvent] = []
        var count = 0
        for name in sections.keys.sorted() where name != "properties" && name != "events" {
            faults.append(ValueError(path: name, kind: .unknownIdentifier, reason: "is not properties or events"))
        }
        /// Each `{"value": …, "time": …}` of one section, by identifier, with its path.
        func entries(_ section: String) -> [(identifier: String, path: String, value: JSONValue, time: JSONValue?)] {
            guard let given = sections[section] else { return [] }
            guard case let .object(byIdentifier) = given else {
                faults.append(
                    ValueError(path: section, kind: .typeMismatch, reason: "must be an object of arrays by identifier"))
                return []
            }
            var found: [(identifier: String, path: String, value: JSONValue, time: JSONValue?)] = []
            for (identifier, list) in byIdentifier.sorted(by: { $0.key < $1.key }) {
                let items: [JSONValue]
                switch (listed, list) {
                case (true, .array(let all)): items = all
                case (false, _): items = [list]
                default:
                    faults.append(
                        ValueError(
                            path: "\(section).\(identifier)", kind: .typeMismatch,
                            reason: "must be an array of {value, time}"))
                    continue
                }
                for (i, item) in items.enumerated() {
                    count += 1
                    let path = listed ? "\(section).\(identifier)[\(i)]" : "\(section).\(identifier)"
                    guard case let .object(entry) = item, let value = entry["value"] else {
                        faults.append(
                            ValueError(path: path, kind: .missing, reason: "must be an object with value and time"))
                        continue
                    }
                    found.append((identifier, path, value, entry["time"]))
                }
            }
            return found
        }
        for entry in entries("properties") {
            guard let property = model.property(entry.identifier) else {
                faults.append(
                    ValueError(path: entry.path, kind: .unknownIdentifier, reason: "is not a property of this product"))
                continue
            }
            do {
                let time = try ThingModel.measurementTime(
                    entry.time, receivedAt: receivedAt, path: entry.path + ".time")
                try property.dataType.validate(entry.value, path: entry.path + ".value")
                for var value in reportedValues(
                    .object([entry.identifier: entry.value]), model: model, receivedAt: receivedAt)
                {
                    value.time = time
                    values.append(value)
                }
            } catch {
                faults.append(error)
            }
        }
        for entry in entries("events") {
            guard let event = model.event(entry.identifier) else {
                faults.append(
                    ValueError(path: entry.path, kind: .unknownIdentifier, reason: "is not an event of this product"))
                continue
            }
            let found = model.validate(fields: event.outputData, entry.value)
            faults += found.map {
                ValueError(
                    path: entry.path + ".value" + ($0.path == "params" ? "" : "." + $0.path), kind: $0.kind,
                    reason: $0.reason)
            }
            do {
                let time = try ThingModel.measurementTime(
                    entry.time, receivedAt: receivedAt, path: entry.path + ".time")
                if found.isEmpty {
                    events.append(
                        RaisedEvent(
                            identifier: entry.identifier, type: event.type.rawValue,
                            valuesJSON: String(decoding: entry.value.serialized(), as: UTF8.self), time: time))
                }
            } catch {
                faults.append(error)
            }
        }
        if count == 0, faults.isEmpty {
            faults.append(ValueError(path: "params", kind: .missing, reason: "holds no values or events"))
        } else if count > batchLimit {
            faults.insert(
                ValueError(
                    path: "params", kind: .outOfRange,
                    reason: "holds \(count) values and events; at most \(batchLimit) go in one post"), at: 0)
        }
        return (faults, faults.isEmpty ? .batch(properties: values, events: events) : nil)
    }

    /// Property values as history rows: numbers (int, float, double, enum, bool, date) also as a
    /// number, everything as JSON text; the device's own `time` when it gives one.
    package static func reportedValues(_ params: JSONValue, model: ThingModel, receivedAt: Millis) -> [ReportedValue] {
        guard case let .object(values) = params else { return [] }
        return values.sorted { $0.key < $1.key }.map { identifier, raw in
            var value = raw
            var time = receivedAt
            let dataType = model.property(identifier)?.dataType
            if case let .object(wrapped) = raw, let inner = wrapped["value"], dataType?.typeName != "struct" {
                value = inner
                // Checked by `validateProperties` before the post gets here.
                time = (try? ThingModel.measurementTime(wrapped["time"], receivedAt: receivedAt)) ?? receivedAt
            }
            if let dataType { value = dataType.normalized(value) }  // a bool as 0 or 1
            let number: Double? =
                switch value {
                case let .int(i): Double(i)
                case let .double(d): d
                case let .string(s) where dataType?.typeName == "date": Double(s)
                default: nil
                }
            // Whether `jsonText` wrote the number as `ReportedValue.text(of:)` does.
            let plain =
                switch value {
                case let .int(i): i.magnitude < 1 << 53
                case .double: true
                default: false
                }
            return ReportedValue(
                identifier: identifier, json: Self.jsonText(value), number: number, time: time, plainNumber: plain)
        }
    }

    /// A value as JSON text; numbers and booleans, nearly every value a device posts, without
    /// going through bytes. The same text as `serialized()`.
    package static func jsonText(_ value: JSONValue) -> String {
        switch value {
        case let .int(n): return String(n)
        case let .bool(b): return b ? "true" : "false"
        case let .double(d) where d.isFinite: return ReportedValue.text(of: d)
        default: return String(decoding: value.serialized(), as: UTF8.self)
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
        /// No reply within `after`: the caller's timeout, or for a sync service the shorter `AlinkRRPC.longestWait`.
        case timedOut(after: Duration)
    }

    /// Sends a property set or a service call to a connected device and waits for its reply
    /// (correlated by request id) up to `timeout`. Values are checked against the thing model first.
    /// A `sync` service is called over RRPC, as Alibaba's platform calls it, and waits at most
    /// `AlinkRRPC.longestWait`; an `async` one and a property set go on their `/sys/…` topics.
    public func send(_ command: Command, productKey: String, deviceName: String, timeout: Duration)
        async throws(CommandFailure) -> JSONValue
    {
        guard let model = await model(for: productKey) else { throw .noThingModel }
        let topic: String
        let method: String
        let params: JSONValue
        /// The service a sync call is for; nil for a command answered on its `…_reply`.
        var syncService: String?
        switch command {
        case let .setProperties(values):
            let faults = model.validateProperties(values, writing: true)
            if !faults.isEmpty { throw .invalid(faults) }
            (topic, method, params) = (
                "/sys/\(productKey)/\(deviceName)/thing/service/property/set", "thing.service.property.set",
                model.normalizedProperties(values)
            )
        case let .callService(identifier, values):
            guard let service = model.service(identifier), !["set", "get"].contains(identifier) else {
                throw .unknownService(identifier)
            }
            let faults = model.validate(fields: service.inputData, values, requireAll: true)
            if !faults.isEmpty { throw .invalid(faults) }
            (topic, method, params) = (
                "/sys/\(productKey)/\(deviceName)/thing/service/\(identifier)", service.method,
                model.normalized(values, fields: service.inputData)
            )
            if service.callType == .sync { syncService = identifier }
        }
        guard let clientId = clientId(productKey: productKey, deviceName: deviceName),
            let broker = broker.withLock({ $0 })
        else { throw .offline }
        let id = String(nextRequestId.add(1, ordering: .relaxed).oldValue)
        // The request id, unique in this run, is also a sync call's RRPC messageId: one number pairs
        // the reply with its call whichever of the two the device goes by.
        let rrpcTopic = syncService.map {
            AlinkRRPC.serviceTopic(messageId: id, productKey: productKey, deviceName: deviceName, identifier: $0)
        }
        let wait = rrpcTopic == nil ? timeout : min(timeout, AlinkRRPC.longestWait)
        let key = "\(productKey)/\(deviceName)/\(id)"
        let request = JSONValue.object([
            "id": .string(id), "version": .string("1.0"), "params": params, "method": .string(method),
        ]).serialized()
        let outcome: CommandOutcome = await withCheckedContinuation { continuation in
            pending.withLock { $0[key] = WaitingCommand(continuation: continuation, rrpcTopic: rrpcTopic) }
            Task {
                await broker.send(
                    Publish(topic: rrpcTopic ?? topic, payload: ByteBuffer(bytes: request), qos: .atMostOnce),
                    to: clientId)
                try? await Task.sleep(for: wait)
                self.pending.withLock { $0.removeValue(forKey: key) }?.continuation.resume(returning: .timedOut)
            }
        }
        switch outcome {
        case let .replied(reply): return reply
        case .timedOut: throw .timedOut(after: wait)
        case .deviceLeft: throw .offline
        }
    }

    /// The request id an Alink reply names, as text; nil when it names none.
    private static func requestId(of reply: JSONValue) -> String? {
        switch reply["id"] {
        case let .string(s)?: s
        case let .int(i)?: String(i)
        default: nil
        }
    }

    /// A device's reply to a command: hands it to the waiting caller, if one is still waiting for
    /// a reply where this one came (`rrpcTopic`: the sync call's topic it came on; nil for a
    /// `…_reply`). A reply for nothing waiting, or waiting elsewhere, is dropped.
    private func resolve(productKey: String, deviceName: String, id: String, rrpcTopic: String?, reply: JSONValue) {
        let key = "\(productKey)/\(deviceName)/\(id)"
        let waiting = pending.withLock { pending -> WaitingCommand? in
            guard let waiting = pending[key], waiting.rrpcTopic == rrpcTopic else { return nil }
            return pending.removeValue(forKey: key)
        }
        waiting?.continuation.resume(returning: .replied(reply))
    }

    /// Checks a post against the product's thing model: the reply to send, what to store (the
    /// understood content, or the refusal with its reason), and whether the device wants the
    /// reply (`sys.ack`; a request too broken to read gets one).
    private func understand(
        _ payload: ByteBuffer, model: ThingModel?,
        check: (ThingModel, AlinkRequest) -> ([ValueError], DeviceReport.Content?)
    ) -> ([UInt8], DeviceReport.Content, Bool) {
        guard let request = payload.withUnsafeReadableBytes({ AlinkRequest.parse(bytes: $0) }) else {
            let reason = "request is not Alink JSON with id and params"
            return (
                Array(AlinkCode.reply(id: "0", code: AlinkCode.invalidRequest, message: reason)),
                .refused(reason: reason), true
            )
        }
        guard let model else {
            let reason = "the product has no thing model"
            return (
                Array(AlinkCode.reply(id: request.id, code: AlinkCode.noThingModel, message: reason)),
                .refused(reason: reason), request.wantsReply
            )
        }
        let (faults, content) = check(model, request)
        guard let first = faults.first, content == nil else {
            return (AlinkCode.successBytes(id: request.id), content ?? .seen, request.wantsReply)
        }
        let code = first.kind == .unknownIdentifier ? AlinkCode.unknownIdentifier : AlinkCode.invalidValue
        let reason = faults.map(\.description).joined(separator: "; ")
        return (
            Array(AlinkCode.reply(id: request.id, code: code, message: reason)), .refused(reason: reason),
            request.wantsReply
        )
    }

    /// Replies go to the device that asked, without a subscription, as Alink devices expect.
    package func reply(to clientId: String, topic: String, _ payload: Data) async {
        guard let broker = broker.withLock({ $0 }) else { return }
        await broker.send(Publish(topic: topic, payload: ByteBuffer(bytes: payload), qos: .atMostOnce), to: clientId)
    }
}

/// A device's report on its way to the telemetry store: its MQTT acknowledgement waits for the
/// group commit that stores it, and the broker waits once per commit, not once per post.
package struct StoredReport: SharedCompletion {
    package let receipt: TelemetryReceipt
    package var id: ObjectIdentifier { receipt.commitId }
    package func whenDone(_ done: @escaping @Sendable ((any Error)?) -> Void) { receipt.whenStored(done) }
}
