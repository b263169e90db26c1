import LinliMQTTTesting
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import LinliMQTT

/// Polls `condition` for up to five seconds.
func eventually(_ condition: @Sendable () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(5)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

@Suite("MQTT broker: connection limits")
struct ConnectionLimitTests {
    static let accepted = MQTTPacket.connack(sessionPresent: false, returnCode: .accepted)

    @Test func sessionsBeyondMaxConnectionsAreRefusedWithServerUnavailable() async throws {
        try await withBroker(MQTTBrokerConfiguration(port: 0, maxConnections: 2)) { port, broker in
            // Clients are kept in variables: a dropped TestClient closes its connection.
            let (a, ackA) = try await TestClient.connected(port, id: "a")
            let (b, ackB) = try await TestClient.connected(port, id: "b")
            #expect(ackA == Self.accepted && ackB == Self.accepted)
            let (c, ackC) = try await TestClient.connected(port, id: "c")
            #expect(ackC == .connack(sessionPresent: false, returnCode: .serverUnavailable))
            #expect(await c.closedWithin(.seconds(3)))
            try await a.send(.disconnect())
            #expect(await eventually { await broker.connectionCount == 1 })
            let (d, ackD) = try await TestClient.connected(port, id: "d")
            #expect(ackD == Self.accepted)
            try await b.send(.pingreq)
            #expect(await b.next() == .pingresp)
            d.close()
        }
    }

    /// A connection's handler refers to itself while its work is under way; once the socket is
    /// closed and that work done, nothing may keep it alive.
    @Test func closedConnectionsAreFreed() async throws {
        try await withBroker { port, broker in
            for i in 0..<20 {
                let (client, _) = try await TestClient.connected(port, id: "c\(i)")
                try await client.send(
                    .publish(Publish(topic: "t", payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetId: 1)))
                #expect(await client.next() == .puback(1))
                if i % 2 == 0 { try await client.send(.disconnect()) } else { client.close() }
            }
            // Refused at sign-in (an empty id without a clean session), and never signed in.
            let (refused, ack) = try await TestClient.connected(port, id: "", clean: false)
            #expect(ack == .connack(sessionPresent: false, returnCode: .identifierRejected))
            refused.close()
            let silent = try await TestClient(port: port)
            silent.close()
            #expect(await eventually { broker.liveConnections.load(ordering: .relaxed) == 0 })
        }
    }

    @Test func socketsBeyondTheBudgetAreClosedAtOnceAndTheListenerCarriesOn() async throws {
        try await withBroker(MQTTBrokerConfiguration(port: 0, maxSockets: 2)) { port, _ in
            let (a, ackA) = try await TestClient.connected(port, id: "a")
            let (b, ackB) = try await TestClient.connected(port, id: "b")
            #expect(ackA == Self.accepted && ackB == Self.accepted)
            for _ in 0..<5 {
                let extra = try await TestClient(port: port)
                #expect(await extra.closedWithin(.seconds(3)))
            }
            a.close()
            // The place frees when the socket closes.
            #expect(
                await eventually {
                    guard let (client, ack) = try? await TestClient.connected(port, id: "c") else { return false }
                    defer { client.close() }
                    return ack == Self.accepted
                })
            try await b.send(.pingreq)
            #expect(await b.next() == .pingresp)
        }
    }

    @Test func theSocketBudgetKeepsDescriptorsInReserve() {
        #expect(SocketBudget.limit(configured: nil, fileLimit: 20_000, alreadyOpen: 40, reserve: 128) == 19_832)
        #expect(SocketBudget.limit(configured: 500, fileLimit: 20_000, alreadyOpen: 40, reserve: 128) == 500)
        #expect(SocketBudget.limit(configured: nil, fileLimit: 100, alreadyOpen: 40, reserve: 128) == 0)
        #expect(SocketBudget.limit(configured: nil, fileLimit: nil, alreadyOpen: nil, reserve: 128) == Int.max)
        let budget = SocketBudget(limit: 2)
        #expect(budget.take() && budget.take() && !budget.take())
        budget.release()
        #expect(budget.take())
    }
}

#if canImport(Glibc)
    import Glibc

    /// A client on a plain socket with a small receive buffer that never reads what it is sent.
    final class SleepingClient {
        let fd: Int32

        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var small: Int32 = 4096
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else { throw Refused() }
        }

        func send(_ packet: MQTTPacket) {
            var buffer = ByteBuffer()
            packet.write(to: &buffer)
            _ = buffer.withUnsafeReadableBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        }

        deinit { close(fd) }
    }

    @Suite("MQTT broker: clients that do not read")
    struct SlowReaderTests {
        @Test func qos0MessagesToAClientThatDoesNotReadAreDroppedNotBuffered() async throws {
            try await withBroker { port, broker in
                let sleeper = try SleepingClient(port: port)
                sleeper.send(
                    .connect(
                        Connect(
                            cleanSession: true, keepAlive: 60, clientId: "sleeper", username: "good",
                            password: ByteBuffer(string: "pw"))))
                sleeper.send(
                    .subscribe(packetId: 1, subscriptions: [Subscription(filter: "flood/#", qos: .atMostOnce)]))
                #expect(await eventually { broker.state.subscriptionCount.load(ordering: .relaxed) == 1 })
                let (publisher, _) = try await TestClient.connected(port, id: "publisher")
                let payload = ByteBuffer(repeating: 0x61, count: 60_000)
                // 24 MB, far more than the socket buffers between the broker and the sleeper hold.
                for _ in 0..<400 {
                    try await publisher.send(.publish(Publish(topic: "flood/x", payload: payload, qos: .atMostOnce)))
                }
                #expect(await eventually { broker.dropped.load(ordering: .relaxed) > 0 })
                try await publisher.send(.pingreq)
                #expect(await publisher.next() == .pingresp)
                withExtendedLifetime(sleeper) {}
            }
        }
    }
#endif

@Suite("MQTT broker: sockets before CONNECT")
struct ConnectDeadlineTests {
    /// The connect deadline counts from the socket's opening: bytes of a CONNECT that trickle in
    /// do not move it, so a client dripping its CONNECT is closed when the deadline is up.
    @Test func aDrippedConnectIsClosedAtTheDeadline() async throws {
        try await withBroker(MQTTBrokerConfiguration(port: 0, connectTimeout: .seconds(2))) { port, _ in
            let connect = Array(
                Wire.bytes(
                    .connect(
                        Connect(
                            cleanSession: true, keepAlive: 60, clientId: String(repeating: "d", count: 40),
                            username: "good", password: ByteBuffer(string: "pw")))
                ).readableBytesView)
            let start = ContinuousClock.now
            let sent = try await RawClient.drip(port: port, connect, every: .milliseconds(200))
            let took = ContinuousClock.now - start
            #expect(sent < connect.count, "closed before the CONNECT was complete (\(sent) of \(connect.count) bytes)")
            #expect(took >= .milliseconds(1_900) && took < .seconds(5), "closed after \(took)")
        }
    }

    /// One address may hold `pendingPerAddress` sockets before their CONNECT; one more closes the
    /// oldest, and a client that connects properly still gets in.
    @Test func anAddressHoldsOnlySoManySocketsBeforeConnect() async throws {
        try await withBroker(MQTTBrokerConfiguration(port: 0, connectTimeout: .seconds(30), pendingPerAddress: 3)) {
            port, broker in
            // Each socket is admitted on its own event loop: the next opens once it is, so that
            // the order of opening is the order of admission.
            var silent: [TestClient] = []
            for i in 0..<5 {
                silent.append(try await TestClient(port: port))
                #expect(await eventually { broker.connectGate.admitted == i + 1 })
            }
            #expect(await silent[0].closedWithin(.seconds(3)))
            #expect(await silent[1].closedWithin(.seconds(3)))
            for client in silent[2...] { #expect(await !client.closedWithin(.milliseconds(300))) }
            #expect(broker.connectGate.count == 3)
            let (device, ack) = try await TestClient.connected(port, id: "device")
            #expect(ack == ConnectionLimitTests.accepted)
            #expect(await silent[2].closedWithin(.seconds(3)), "the device's socket pushed the oldest out")
            // Signed in, it no longer counts: three more wait beside it.
            try await device.send(.pingreq)
            #expect(await device.next() == .pingresp)
            silent.append(try await TestClient(port: port))
            #expect(await !silent[3].closedWithin(.milliseconds(300)))
        }
    }

    @Test func addressesCountByHostAndIPv6ByTheirSlash64() throws {
        let v4 = try SocketAddress(ipAddress: "192.0.2.7", port: 1)
        let a = try SocketAddress(ipAddress: "2001:db8:1:2::7", port: 1)
        let b = try SocketAddress(ipAddress: "2001:db8:1:2:ffff:1:2:3", port: 1)
        let c = try SocketAddress(ipAddress: "2001:db8:1:3::7", port: 1)
        #expect(ConnectGate.key(v4) == "192.0.2.7")
        #expect(ConnectGate.key(a) == ConnectGate.key(b))
        #expect(ConnectGate.key(a) != ConnectGate.key(c))
        #expect(ConnectGate.key(try SocketAddress(ipAddress: "::1", port: 1)) == "0:0:0:0::/64")
    }
}

extension RawClient {
    /// Sends `bytes` one at a time, `every` apart, until done or the broker closes the socket;
    /// returns how many were sent, after waiting (up to 10 s) for the close.
    static func drip(port: Int, _ bytes: [UInt8], every interval: Duration) async throws -> Int {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            let closed = Task {
                do { for try await _ in inbound {} } catch {}
            }
            var sent = 0
            for byte in bytes {
                if !channel.channel.isActive { break }
                do { try await outbound.write(ByteBuffer(bytes: [byte])) } catch { break }
                sent += 1
                try await Task.sleep(for: interval)
            }
            await closed.value
            return sent
        }
    }
}
