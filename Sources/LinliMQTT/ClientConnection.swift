import Logging
import NIOCore
import NIOSSL

/// One client's connection, from CONNECT to close. Reads in this task; writes go through the
/// session's outbox, drained by a child task, so deliveries and acknowledgements keep their order.
struct ClientConnection {
    let broker: MQTTBroker
    let channel: NIOAsyncChannel<MQTTPacket, MQTTPacket>
    /// Whether it came in on the TLS listener.
    let secure: Bool

    func run() async {
        let remote = channel.channel.remoteAddress?.description ?? "-"
        var logger = broker.logger
        logger[metadataKey: "remote"] = "\(remote)"
        if secure { logger[metadataKey: "tls"] = "true" }
        var attached: (clientId: String, connectionId: UInt64)? = nil
        var will: Will? = nil
        var policy: (any MQTTClientPolicy)? = nil
        var graceful = false
        do {
            try await channel.executeThenClose { inbound, outbound in
                var packets = inbound.makeAsyncIterator()
                guard let first = try await packets.next() else { return }
                guard case let .connect(connect) = first else {
                    logger.notice("closing: first packet is not CONNECT")
                    return
                }
                // CONNECT is here, so the connect timeout is met: from now on silence is measured
                // against the keep-alive (1.5 times it), also while the client is being signed in,
                // which under load can take longer than the connect timeout.
                let socket = channel.channel
                let keepAlive: TimeAmount? = connect.keepAlive == 0 ? nil : .milliseconds(Int64(connect.keepAlive) * 1500)
                socket.eventLoop.execute {
                    (try? socket.pipeline.syncOperations.handler(type: ReadDeadlineHandler.self))?.setTimeout(keepAlive)
                }
                var clientId = connect.clientId
                if clientId.isEmpty {
                    // MQTT-3.1.3-7/8: an empty id is allowed only for a clean session; the broker assigns one.
                    guard connect.cleanSession else {
                        try await outbound.write(.connack(sessionPresent: false, returnCode: .identifierRejected))
                        return
                    }
                    clientId = "linli-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
                }
                if clientId.utf8.count > 256 {
                    try await outbound.write(.connack(sessionPresent: false, returnCode: .identifierRejected))
                    return
                }
                logger[metadataKey: "client"] = "\(clientId)"
                switch await broker.authenticator.authenticate(connect, connection: MQTTConnectionInfo(remote: remote, secure: secure)) {
                case let .refused(code):
                    logger.notice("connection refused", metadata: ["code": "\(code)"])
                    try await outbound.write(.connack(sessionPresent: false, returnCode: code))
                    return
                case let .accepted(granted):
                    policy = granted
                }
                let outbox = Outbox(close: { socket.close(promise: nil) })
                guard let (connectionId, present) = await broker.state.attach(clientId: clientId, clean: connect.cleanSession, outbox: outbox) else {
                    logger.warning("connection refused: the broker is at its connection limit")
                    try await outbound.write(.connack(sessionPresent: false, returnCode: .serverUnavailable))
                    return
                }
                attached = (clientId, connectionId)
                if let w = connect.will, policy?.mayPublish(to: w.topic) == true { will = w }
                try await outbound.write(.connack(sessionPresent: present, returnCode: .accepted))
                await broker.onPresence(clientId, true)

                // Three parts: this task reads and calls the publish hook in order; the completer
                // awaits each message's completion in the same order, then routes and acknowledges
                // it; the writer sends what the outbox gathers, as many packets per flush as have
                // come. Reading ends first, the completer finishes what was read, then the writer
                // what was sent.
                let pipeline = PublishPipeline(window: broker.configuration.inflightWindow)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while let packets = await outbox.next() { try await outbound.write(contentsOf: packets) }
                    }
                    group.addTask {
                        defer { outbox.finish() }
                        try await complete(pipeline, outbox: outbox)
                    }
                    defer { pipeline.finish() }
                    graceful = try await serve(&packets, clientId: clientId, policy: policy!, pipeline: pipeline, outbox: outbox, logger: logger)
                    pipeline.finish()
                    try await group.waitForAll()
                }
            }
        } catch let error as MQTTProtocolError {
            logger.notice("closing: protocol error", metadata: ["error": "\(error)"])
        } catch NIOSSLError.handshakeFailed(.sslError([.eofDuringHandshake])) {
            // Closed before the handshake was done: a port probe or a health check, not worth a notice.
            logger.debug("connection ended during the TLS handshake")
        } catch NIOSSLError.handshakeFailed(let error) {
            // Not TLS at all, an old protocol version, or a client that distrusts our certificate.
            logger.notice("closing: TLS handshake failed", metadata: ["error": "\(error)"])
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
        if let (clientId, connectionId) = attached {
            // A connection that was taken over leaves presence to its successor.
            if await broker.state.detach(clientId: clientId, connectionId: connectionId) {
                await broker.onPresence(clientId, false)
            }
            // MQTT-3.1.2-8: the will is published when the connection ends without DISCONNECT.
            if !graceful, let will {
                await broker.state.route(Publish(topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain))
            }
        }
    }

    /// Handles packets until the client disconnects (true) or the connection fails (false).
    private func serve(_ packets: inout NIOAsyncChannelInboundStream<MQTTPacket>.AsyncIterator, clientId: String, policy: any MQTTClientPolicy,
                       pipeline: PublishPipeline, outbox: Outbox, logger: Logger) async throws -> Bool {
        let state = broker.state
        let rate = Double(broker.configuration.maxPublishesPerSecond)
        var tokens = rate
        var last = ContinuousClock.now
        while let packet = try await packets.next() {
            switch packet {
            case let .publish(message):
                let now = ContinuousClock.now
                let elapsed = now - last
                last = now
                tokens = min(rate, tokens + rate * (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
                if tokens < 1 {
                    logger.warning("closing: publish rate above the limit", metadata: ["limit": "\(Int(rate))/s"])
                    return false
                }
                tokens -= 1
                guard policy.mayPublish(to: message.topic) else {
                    logger.warning("closing: publish to a topic this client may not use", metadata: ["topic": "\(message.topic)"])
                    return false
                }
                // The hook runs here, in the order messages arrive; what it leaves to finish (making
                // the message durable) runs while the next ones are read.
                var first = true
                if message.qos == .exactlyOnce {
                    guard let isFirst = await state.firstReceiptOfQoS2(clientId: clientId, packetId: message.packetId!) else {
                        logger.warning("closing: too many QoS 2 messages awaiting PUBREL")
                        return false
                    }
                    first = isFirst
                }
                let completion = first ? try await broker.onPublish(clientId, message) : .done
                guard await pipeline.push(.init(message: message, completion: completion, route: first)) else { return false }
            case let .pubrel(id):
                await state.releasedQoS2(clientId: clientId, packetId: id)
                outbox.send(.pubcomp(id))
            case let .puback(id), let .pubcomp(id):
                await state.acknowledged(clientId: clientId, packetId: id)
            case let .pubrec(id):
                await state.received(clientId: clientId, packetId: id)
            case let .subscribe(id, subscriptions):
                let decided = subscriptions.map { ($0, allowed: policy.maySubscribe(to: $0.filter)) }
                let codes = await state.subscribe(clientId: clientId, decided)
                outbox.send(.suback(packetId: id, returnCodes: codes))
                await state.deliverRetained(clientId: clientId, decided.filter(\.allowed).map(\.0))
            case let .unsubscribe(id, filters):
                await state.unsubscribe(clientId: clientId, filters)
                outbox.send(.unsuback(id))
            case .pingreq:
                outbox.send(.pingresp)
            case .disconnect:
                return true
            case .connect:
                logger.notice("closing: a second CONNECT (MQTT-3.1.0-2)")
                return false
            case .connack, .suback, .unsuback, .pingresp:
                logger.notice("closing: a packet only a server sends")
                return false
            }
        }
        return false
    }

    /// Awaits each received message's completion in arrival order, then routes it and sends its
    /// PUBACK or PUBREC. A failed completion closes the connection: neither that message nor any
    /// later one is acknowledged.
    private func complete(_ pipeline: PublishPipeline, outbox: Outbox) async throws {
        let state = broker.state
        while let entry = await pipeline.next() {
            if let work = entry.completion.work {
                do {
                    try await work()
                } catch {
                    pipeline.fail()
                    outbox.close()
                    throw error
                }
            }
            if entry.route, entry.message.retain || state.subscriptionCount.load(ordering: .relaxed) > 0 {
                await state.route(entry.message)
            }
            switch entry.message.qos {
            case .atMostOnce: break
            case .atLeastOnce: outbox.send(.puback(entry.message.packetId!))
            case .exactlyOnce: outbox.send(.pubrec(entry.message.packetId!))
            }
        }
    }
}
