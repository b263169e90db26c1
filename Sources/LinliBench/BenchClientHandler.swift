import Foundation
import LinliMQTT
import NIOCore

/// Why a client did not get as far as being ready.
public enum BenchConnectFailure: Error, CustomStringConvertible {
    case refused(ConnectReturnCode)
    case subscriptionRefused
    case noConnack
    case closedBeforeReady

    public var description: String {
        switch self {
        case let .refused(code): return "CONNACK refused: \(code)"
        case .subscriptionRefused: return "SUBACK refused the filter"
        case .noConnack: return "no CONNACK within 30 s"
        case .closedBeforeReady: return "connection closed before CONNACK"
        }
    }
}

/// One simulated client, living on its channel's event loop, reading and writing raw bytes
/// (`BenchWire`). It sends CONNECT when the socket opens; then a device publishes whenever its
/// loop's driver asks and times each PUBACK, and the subscriber subscribes and acknowledges what
/// is relayed to it. Everything here runs on the event loop: no task, lock or allocation per
/// message — a device writes its posts into one buffer it reuses, and reads happen in place in
/// the buffer the socket read into.
final class BenchClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Role {
        case device
        case subscriber(filter: String)
    }

    private enum State { case connecting, subscribing, ready, closing, closed }

    private let identity: BenchIdentity
    private let role: Role
    private let post: PropertyPostPacket
    private let qos: QoS
    private let keepAlive: UInt16
    private let driver: LoopDriver
    /// Completed when the client is ready: CONNACK accepted (device) or SUBACK granted (subscriber).
    private let ready: EventLoopPromise<Void>
    private var context: ChannelHandlerContext?
    private var state = State.connecting
    private var window: InflightWindow
    private var sequence: UInt64 = 0
    private var reader: ServerPacketReader
    /// Posts (and pings) on their way out. Reused: once the socket has taken the bytes, the channel
    /// lets go of the buffer and the next `clear()` keeps its memory.
    private var outbound: ByteBuffer
    /// PUBACKs for QoS 1 deliveries, gathered over one read batch and written together.
    private var acknowledgements: ByteBuffer
    private var connackDeadline: Scheduled<Void>?
    /// When this client last wrote, for keep-alive pings.
    private(set) var lastWriteNanos: UInt64 = 0
    /// Where the driver keeps this client, so that removal is O(1).
    var driverSlot = -1

    init(
        identity: BenchIdentity, role: Role, qos: QoS, inflight: Int, keepAlive: UInt16, driver: LoopDriver,
        ready: EventLoopPromise<Void>
    ) {
        self.identity = identity
        self.role = role
        self.post = PropertyPostPacket(topic: identity.topic, qos: qos)
        self.qos = qos
        self.keepAlive = keepAlive
        self.driver = driver
        self.ready = ready
        window = InflightWindow(limit: inflight)
        if case .device = role {
            reader = ServerPacketReader(judgesReplies: true)
        } else {
            reader = ServerPacketReader(judgesReplies: false)
        }
        outbound = ByteBufferAllocator().buffer(capacity: 0)
        acknowledgements = outbound
    }

    var isDevice: Bool { if case .device = role { true } else { false } }
    var inflightCount: Int { window.count }
    var hasRoom: Bool { window.hasRoom }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbound = context.channel.allocator.buffer(capacity: 512)
        acknowledgements = context.channel.allocator.buffer(capacity: 256)
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard state == .connecting, connackDeadline == nil else { return }
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        let connect = MQTTPacket.connect(identity.connect(keepAlive: keepAlive, nowMillis: nowMillis))
        context.writeAndFlush(
            wrapOutboundOut(BenchWire.bytes(of: connect, allocator: context.channel.allocator)), promise: nil)
        let channel = context.channel
        connackDeadline = context.eventLoop.scheduleTask(in: .seconds(30)) { [ready] in
            ready.fail(BenchConnectFailure.noConnack)
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        do {
            try reader.read(&bytes) { packet in received(packet, context: context) }
        } catch {
            // Bytes that are not MQTT: nothing after them can be trusted.
            protocolError(context)
        }
    }

    private func received(_ packet: ServerPacket, context: ChannelHandlerContext) {
        switch packet {
        case let .puback(id):
            let wasFull = !window.hasRoom
            if let sentAt = window.acknowledge(id) {
                if wasFull { driver.device(at: driverSlot, hasRoom: true) }
                driver.acknowledged(sentAt: sentAt, now: NIODeadline.now().uptimeNanoseconds)
            } else {
                driver.counters.protocolErrors += 1
            }
        case let .publish(packetId, reply):
            if let packetId { BenchWire.writePuback(packetId, into: &acknowledgements) }  // written once per read batch
            switch role {
            case .device:
                // The server's `…/post_reply`, sent to the device without a subscription.
                driver.counters.replies += 1
                if case let .failure(payload) = reply {
                    driver.counters.rejectedReplies += 1
                    if driver.counters.firstRejection == nil {
                        driver.counters.firstRejection = String(buffer: payload)
                    }
                }
            case .subscriber:
                driver.counters.relayed += 1
            }
        case let .connack(_, code):
            connackDeadline?.cancel()
            guard state == .connecting else { return protocolError(context) }
            guard code == .accepted else {
                ready.fail(BenchConnectFailure.refused(code))
                context.close(promise: nil)
                return
            }
            switch role {
            case .device:
                becomeReady()
            case let .subscriber(filter):
                state = .subscribing
                let subscribe = MQTTPacket.subscribe(
                    packetId: 1, subscriptions: [Subscription(filter: filter, qos: qos)])
                context.writeAndFlush(
                    wrapOutboundOut(BenchWire.bytes(of: subscribe, allocator: context.channel.allocator)), promise: nil)
            }
        case let .suback(_, code):
            guard state == .subscribing else { return protocolError(context) }
            guard code != MQTTPacket.subackFailure else {
                ready.fail(BenchConnectFailure.subscriptionRefused)
                context.close(promise: nil)
                return
            }
            becomeReady()
        case .pingresp:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if acknowledgements.readableBytes > 0, state != .closed {
            context.writeAndFlush(wrapOutboundOut(acknowledgements), promise: nil)
            acknowledgements.clear()  // new memory only while the socket still holds the last batch
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closed()
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset or another socket error: the connection is over; channelInactive does the counting.
        context.close(promise: nil)
    }

    // MARK: what the driver asks

    /// Writes up to `limit` property posts, as far as the window and the socket have room, in one
    /// write; returns how many. Each post is timed from its own `NIODeadline.now()`, just before
    /// it is encoded, and the bytes leave in the flush right after.
    func publish(upTo limit: Int) -> Int {
        guard state == .ready, window.hasRoom, let context, context.channel.isWritable else { return 0 }
        outbound.clear()  // keeps its memory unless the socket still holds the last write
        var written = 0
        var now: UInt64 = 0
        while written < limit {
            now = NIODeadline.now().uptimeNanoseconds
            var packetId: UInt16 = 0
            if qos != .atMostOnce {
                guard let id = window.reserve(sentAt: now) else { break }
                packetId = id
            }
            sequence += 1
            post.write(sequence: sequence, packetId: packetId, into: &outbound)
            written += 1
        }
        if written > 0 {
            context.writeAndFlush(wrapOutboundOut(outbound), promise: nil)
            lastWriteNanos = now
        }
        if !window.hasRoom { driver.device(at: driverSlot, hasRoom: false) }
        return written
    }

    func pingIfIdle(now: UInt64, idleNanos: UInt64) {
        guard state == .ready, let context, now &- lastWriteNanos > idleNanos else { return }
        var ping = context.channel.allocator.buffer(capacity: 2)
        ping.writeInteger(BenchWire.pingreq)
        context.writeAndFlush(wrapOutboundOut(ping), promise: nil)
        lastWriteNanos = now
    }

    /// Ends the session the polite way, so the server does not publish a will or count an error.
    func disconnect() {
        guard let context, state != .closed, state != .closing else { return }
        state = .closing
        let channel = context.channel
        var bytes = channel.allocator.buffer(capacity: 2)
        bytes.writeInteger(BenchWire.disconnect)
        context.writeAndFlush(wrapOutboundOut(bytes)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: private

    private func becomeReady() {
        state = .ready
        lastWriteNanos = NIODeadline.now().uptimeNanoseconds
        driver.attach(self)
        ready.succeed(())
    }

    private func closed() {
        connackDeadline?.cancel()
        ready.fail(BenchConnectFailure.closedBeforeReady)  // ignored when already completed
        if state == .ready || state == .closing { driver.detach(self, expected: state == .closing) }
        state = .closed
    }

    private func protocolError(_ context: ChannelHandlerContext) {
        driver.counters.protocolErrors += 1
        context.close(promise: nil)
    }
}
