@_exported import LinliMQTT
import NIOCore
import NIOPosix
import NIOSSL

// A minimal MQTT client over Linli's own codec, for the tests of the broker and of what is built
// on it. Not a product.

/// Collects what a client receives, so a test can wait for the next packet with a deadline.
public actor Mailbox {
    public init() {}
    private var packets: [MQTTPacket] = []
    private var closed = false
    private var waiter: CheckedContinuation<Void, Never>?

    public func put(_ packet: MQTTPacket) {
        packets.append(packet)
        waiter?.resume()
        waiter = nil
    }
    public func close() {
        closed = true
        waiter?.resume()
        waiter = nil
    }
    public var isClosed: Bool { closed }

    public func next(within timeout: Duration) async -> MQTTPacket? {
        let deadline = ContinuousClock.now + timeout
        while packets.isEmpty, !closed, ContinuousClock.now < deadline {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                waiter = c
                Task {
                    try? await Task.sleep(for: .milliseconds(20))
                    await self.poke()
                }
            }
        }
        return packets.isEmpty ? nil : packets.removeFirst()
    }

    private func poke() {
        waiter?.resume()
        waiter = nil
    }
}

/// A minimal MQTT client over the same codec, for driving the broker from tests.
public final class TestClient: Sendable {
    public let channel: NIOAsyncChannel<MQTTPacket, MQTTPacket>
    public let mailbox = Mailbox()
    let reader: Task<Void, Never>

    /// With `tls`, the client speaks TLS and verifies the broker's certificate against it.
    /// `version`: what it speaks (its CONNECT must say the same).
    public init(port: Int, tls: NIOSSLContext? = nil, version: MQTTVersion = .v3_1_1) async throws {
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(MQTTDecoder(version: version)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(MQTTEncoder(version: version)))
                    return try NIOAsyncChannel<MQTTPacket, MQTTPacket>(wrappingChannelSynchronously: channel)
                }
            }
        let inbound = channel.inbound
        let mailbox = self.mailbox
        reader = Task {
            do { for try await packet in inbound { await mailbox.put(packet) } } catch {}
            await mailbox.close()
        }
    }

    public static func connected(
        _ port: Int, id: String, user: String = "good", clean: Bool = true, keepAlive: UInt16 = 60, will: Will? = nil,
        tls: NIOSSLContext? = nil
    ) async throws -> (TestClient, MQTTPacket?) {
        let client = try await TestClient(port: port, tls: tls)
        try await client.send(
            .connect(
                Connect(
                    cleanSession: clean, keepAlive: keepAlive, clientId: id, will: will, username: user,
                    password: ByteBuffer(string: "pw"))))
        return (client, await client.next())
    }

    /// An MQTT 5 client, connected: its CONNACK comes back with it.
    public static func connected5(
        _ port: Int, id: String, user: String = "good", clean: Bool = true, keepAlive: UInt16 = 60, will: Will? = nil,
        properties: MQTTProperties = .none
    ) async throws -> (TestClient, MQTTPacket?) {
        let client = try await TestClient(port: port, version: .v5)
        try await client.send(
            .connect(
                Connect(
                    protocolLevel: 5, cleanSession: clean, keepAlive: keepAlive, clientId: id, will: will,
                    username: user, password: ByteBuffer(string: "pw"), properties: properties)))
        return (client, await client.next())
    }

    public func send(_ packet: MQTTPacket) async throws { try await channel.outbound.write(packet) }
    public func next(within timeout: Duration = .seconds(5)) async -> MQTTPacket? {
        await mailbox.next(within: timeout)
    }
    public func closedWithin(_ timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await mailbox.isClosed { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
    public func close() { channel.channel.close(promise: nil) }

    deinit {
        // An NIOAsyncChannel's writer must be finished before it goes away.
        channel.outbound.finish()
        channel.channel.close(promise: nil)
        reader.cancel()
    }

    public func subscribe(_ filter: String, qos: QoS, id: UInt16 = 1) async throws -> MQTTPacket? {
        try await send(.subscribe(packetId: id, subscriptions: [Subscription(filter: filter, qos: qos)]))
        return await next()
    }
}

/// Packets as bytes, for tests that send what a client would and what no client should.
public enum Wire {
    public static func bytes(_ packet: MQTTPacket, _ version: MQTTVersion = .v3_1_1) -> ByteBuffer {
        var out = ByteBuffer()
        packet.write(to: &out, version: version)
        return out
    }

    /// An MQTT 5 PUBLISH to topic "t" at QoS 0, payload "p", with these property bytes (their
    /// length first).
    public static func publish5(properties: [UInt8]) -> [UInt8] {
        let body: [UInt8] = [0x00, 0x01, 0x74] + properties + [0x70]
        return [0x30, UInt8(body.count)] + body
    }
}
