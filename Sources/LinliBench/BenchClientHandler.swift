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

/// One simulated client, living on its channel's event loop behind LinliMQTT's decoder and encoder.
/// It sends CONNECT when the socket opens; then a device publishes whenever its loop's driver asks
/// and times each PUBACK, and the subscriber subscribes and acknowledges what is relayed to it.
/// Everything here runs on the event loop: no task, lock or allocation per message beyond the
/// packet itself.
final class BenchClientHandler: ChannelInboundHandler {
    typealias InboundIn = MQTTPacket
    typealias OutboundOut = MQTTPacket

    enum Role {
        case device
        case subscriber(filter: String)
    }

    private enum State { case connecting, subscribing, ready, closing, closed }

    private let identity: BenchIdentity
    private let role: Role
    private let topic: String
    private let qos: QoS
    private let keepAlive: UInt16
    private let driver: LoopDriver
    /// Completed when the client is ready: CONNACK accepted (device) or SUBACK granted (subscriber).
    private let ready: EventLoopPromise<Void>
    private var context: ChannelHandlerContext?
    private var state = State.connecting
    private var window: InflightWindow
    private var sequence: UInt64 = 0
    private var needsFlush = false
    private var connackDeadline: Scheduled<Void>?
    /// When this client last wrote, for keep-alive pings.
    private(set) var lastWriteNanos: UInt64 = 0
    /// Where the driver keeps this client, so that removal is O(1).
    var driverSlot = -1

    init(identity: BenchIdentity, role: Role, qos: QoS, inflight: Int, keepAlive: UInt16, driver: LoopDriver, ready: EventLoopPromise<Void>) {
        self.identity = identity
        self.role = role
        self.topic = identity.topic
        self.qos = qos
        self.keepAlive = keepAlive
        self.driver = driver
        self.ready = ready
        window = InflightWindow(limit: inflight)
    }

    var isDevice: Bool { if case .device = role { true } else { false } }
    var inflightCount: Int { window.count }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard state == .connecting, connackDeadline == nil else { return }
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        write(.connect(identity.connect(keepAlive: keepAlive, nowMillis: nowMillis)), flush: true)
        let channel = context.channel
        connackDeadline = context.eventLoop.scheduleTask(in: .seconds(30)) { [ready] in
            ready.fail(BenchConnectFailure.noConnack)
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .puback(id):
            if let sentAt = window.acknowledge(id) {
                driver.acknowledged(sentAt: sentAt, now: NIODeadline.now().uptimeNanoseconds)
            } else {
                driver.counters.protocolErrors += 1
            }
        case let .publish(message):
            received(message)
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
                write(.subscribe(packetId: 1, subscriptions: [Subscription(filter: filter, qos: qos)]), flush: true)
            }
        case let .suback(_, codes):
            guard state == .subscribing else { return protocolError(context) }
            guard codes.first.map({ $0 != MQTTPacket.subackFailure }) == true else {
                ready.fail(BenchConnectFailure.subscriptionRefused)
                context.close(promise: nil)
                return
            }
            becomeReady()
        case .pingresp:
            break
        default:
            protocolError(context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
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
        // A decoding error or a reset: the connection is over; channelInactive does the counting.
        context.close(promise: nil)
    }

    // MARK: what the driver asks

    /// Writes one property post if the window and the socket have room; false when they have not.
    func publishIfPossible(now: UInt64) -> Bool {
        guard state == .ready, let context, context.channel.isWritable else { return false }
        var packetId: UInt16? = nil
        if qos != .atMostOnce {
            guard let id = window.reserve(sentAt: now) else { return false }
            packetId = id
        }
        sequence += 1
        var payload = context.channel.allocator.buffer(capacity: 160)
        PropertyPost.write(sequence: sequence, into: &payload)
        write(.publish(Publish(topic: topic, payload: payload, qos: qos, packetId: packetId)), flush: true)
        lastWriteNanos = now
        return true
    }

    func pingIfIdle(now: UInt64, idleNanos: UInt64) {
        guard state == .ready, now &- lastWriteNanos > idleNanos else { return }
        write(.pingreq, flush: true)
        lastWriteNanos = now
    }

    /// Ends the session the polite way, so the server does not publish a will or count an error.
    func disconnect() {
        guard let context, state != .closed, state != .closing else { return }
        state = .closing
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.disconnect)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: private

    private func received(_ message: Publish) {
        if let id = message.packetId {
            write(.puback(id), flush: false)  // flushed once per read batch
            needsFlush = true
        }
        switch role {
        case .device:
            // The server's `…/post_reply`, sent to the device without a subscription.
            driver.counters.replies += 1
            if !PropertyPost.isSuccessReply(message.payload) {
                driver.counters.rejectedReplies += 1
                if driver.counters.firstRejection == nil { driver.counters.firstRejection = String(buffer: message.payload) }
            }
        case .subscriber:
            driver.counters.relayed += 1
        }
    }

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

    private func write(_ packet: MQTTPacket, flush: Bool) {
        guard let context else { return }
        if flush {
            context.writeAndFlush(wrapOutboundOut(packet), promise: nil)
        } else {
            context.write(wrapOutboundOut(packet), promise: nil)
        }
    }
}
