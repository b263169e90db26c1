import LinliCore
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import LinliHTTP

/// Which socket goes when the HTTP server's socket caps are reached, on channels that stand for
/// sockets from given addresses.
@Suite("HTTP socket limits")
struct ConnectionLimitsTests {
    static var quiet: Logger {
        var logger = Logger(label: "connection-limits-test")
        logger.logLevel = .critical
        return logger
    }

    static func socket(from address: String) async throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try await channel.connect(to: SocketAddress(ipAddress: address, port: 40_000))
        return channel
    }

    /// At the total cap, an idle keep-alive connection (served, no request under way) is closed
    /// before an older one that never sent a whole head, and one serving a request never is.
    @Test func idleKeepAliveConnectionsAreClosedFirst() async throws {
        let limits = HTTPConnectionLimits(total: 3, perAddress: 10, reserve: 0, logger: Self.quiet)
        let waiting = try await Self.socket(from: "192.0.2.1")
        let keptAlive = try await Self.socket(from: "192.0.2.2")
        let serving = try await Self.socket(from: "192.0.2.3")
        for channel in [waiting, keptAlive, serving] { #expect(limits.admit(channel) == .admitted) }
        limits.busy(keptAlive, true)
        limits.busy(keptAlive, false)  // its response ended: idle, kept alive
        limits.busy(serving, true)
        let newcomer = try await Self.socket(from: "192.0.2.4")
        #expect(limits.admit(newcomer) == .admitted)
        #expect(!keptAlive.isActive, "the idle keep-alive connection went")
        #expect(waiting.isActive && serving.isActive)
        // Then the oldest waiting; the one serving a request stays.
        #expect(limits.admit(try await Self.socket(from: "192.0.2.5")) == .admitted)
        #expect(!waiting.isActive && serving.isActive)
        #expect(limits.count == 3)
    }

    /// One address beyond its cap pushes out its own oldest waiting socket; a configured reverse
    /// proxy carries many clients and is not capped per address.
    @Test func anAddressPushesOutOnlyItsOwnSocketsAndAProxyIsNotCapped() async throws {
        let limits = HTTPConnectionLimits(
            total: 100, perAddress: 2, exempt: [IPAddressRange("10.0.0.0/8")!], logger: Self.quiet)
        let other = try await Self.socket(from: "192.0.2.9")
        #expect(limits.admit(other) == .admitted)
        var attacker: [EmbeddedChannel] = []
        for _ in 0..<3 {
            let channel = try await Self.socket(from: "198.51.100.7")
            #expect(limits.admit(channel) == .admitted)
            attacker.append(channel)
        }
        #expect(attacker.map(\.isActive) == [false, true, true], "its oldest went, and only its own")
        #expect(other.isActive)
        var proxied: [EmbeddedChannel] = []
        for _ in 0..<5 {
            let channel = try await Self.socket(from: "10.1.2.3")
            #expect(limits.admit(channel) == .admitted)
            proxied.append(channel)
        }
        #expect(proxied.allSatisfy { $0.isActive }, "the proxy's sockets are not capped per address")
    }

    /// When every socket is serving a request, a few more are let in on probation (health checks),
    /// and while those serve too, none.
    @Test func whenEverySocketIsBusyAReserveIsOnProbation() async throws {
        let limits = HTTPConnectionLimits(total: 2, perAddress: 10, reserve: 1, logger: Self.quiet)
        for address in ["192.0.2.1", "192.0.2.2"] {
            let channel = try await Self.socket(from: address)
            #expect(limits.admit(channel) == .admitted)
            limits.busy(channel, true)
        }
        let health = try await Self.socket(from: "192.0.2.3")
        #expect(limits.admit(health) == .probation)
        limits.busy(health, true)  // answering its /healthz
        #expect(limits.admit(try await Self.socket(from: "192.0.2.4")) == nil)

    }

    /// A health check's socket on probation that has gone idle holds none of the places: the next
    /// socket pushes it out only to take its place on probation, never to be served as if there
    /// were room.
    @Test func anIdleHealthCheckMakesNoRoomForOtherRequests() async throws {
        let limits = HTTPConnectionLimits(total: 2, perAddress: 10, reserve: 1, logger: Self.quiet)
        var serving: [EmbeddedChannel] = []
        for address in ["192.0.2.1", "192.0.2.2"] {
            let channel = try await Self.socket(from: address)
            #expect(limits.admit(channel) == .admitted)
            limits.busy(channel, true)
            serving.append(channel)
        }
        let health = try await Self.socket(from: "192.0.2.3")
        #expect(limits.admit(health) == .probation)
        limits.busy(health, true)
        limits.busy(health, false)  // answered; its client has not closed it yet
        let next = try await Self.socket(from: "192.0.2.4")
        #expect(limits.admit(next) == .probation, "still no room: on probation, as the health check was")
        #expect(!health.isActive && serving.allSatisfy(\.isActive))
        #expect(limits.count == 3)
        // A place freed by a request that ended is a place again.
        limits.busy(serving[0], false)
        #expect(limits.admit(try await Self.socket(from: "192.0.2.5")) == .admitted)
        #expect(!serving[0].isActive)
    }
}
