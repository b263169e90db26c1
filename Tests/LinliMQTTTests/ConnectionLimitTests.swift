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
            try await a.send(.disconnect)
            #expect(await eventually { await broker.connectionCount == 1 })
            let (d, ackD) = try await TestClient.connected(port, id: "d")
            #expect(ackD == Self.accepted)
            try await b.send(.pingreq)
            #expect(await b.next() == .pingresp)
            d.close()
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
            #expect(await eventually {
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
