import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliMQTT
import LinliStorage
import Logging
import NIOCore
import ServiceLifecycle

/// Decides who may use the embedded broker. For now: integration accounts (username, bcrypt
/// password, topic lists). Anything else is refused: there is no anonymous access.
package struct IntegrationAuthenticator: MQTTAuthenticator {
    package let store: Store
    package let logger: Logger

    package func authenticate(_ connect: Connect, connection: MQTTConnectionInfo) async -> MQTTAuthentication {
        guard let username = connect.username, let password = connect.password.map({ String(buffer: $0) }) else {
            return .refused(.notAuthorized)
        }
        guard let account = try? await store.mqttAccount(username: username) else {
            _ = try? await Passwords.verify(password, hash: Passwords.decoy)  // same time as a wrong password
            return .refused(.badUsernameOrPassword)
        }
        guard (try? await Passwords.verify(password, hash: account.passwordHash)) == true else {
            logger.notice(
                "MQTT sign-in failed", metadata: ["username": "\(username)", "remote": "\(connection.remote ?? "-")"])
            return .refused(.badUsernameOrPassword)
        }
        guard account.status == .active else { return .refused(.notAuthorized) }
        return .accepted(TopicPolicy(publish: account.publishFilters, subscribe: account.subscribeFilters))
    }
}

package struct GatewayAuthenticator: MQTTAuthenticator {
    package let gateway: DeviceGateway
    package func authenticate(_ connect: Connect, connection: MQTTConnectionInfo) async -> MQTTAuthentication {
        await gateway.authenticate(connect, connection: connection)
    }
}

/// Runs the broker inside `linli serve`'s service group; stops listening on graceful shutdown.
public struct MQTTBrokerService: Service {
    public let broker: MQTTBroker
    public let gateway: DeviceGateway
    /// Persistent sessions, their messages, retained messages and wills, kept across restarts.
    public let sessions: BrokerSessionStore

    public init(store: Store, configuration: MQTTBrokerConfiguration, rules: (any DeviceWatcher)? = nil, logger: Logger)
    {
        let gateway = DeviceGateway(store: store, logger: logger, rules: rules)
        self.gateway = gateway
        let sessions = BrokerSessionStore(database: store.telemetry, logger: logger)
        self.sessions = sessions
        broker = MQTTBroker(
            configuration: configuration,
            authenticator: GatewayAuthenticator(gateway: gateway), logger: logger,
            receive: { clientId, message in try await gateway.handle(clientId: clientId, message: message) },
            receiveNow: { clientId, message in gateway.handleNow(clientId: clientId, message: message) },
            onPresence: { clientId, connected in await gateway.presence(clientId: clientId, connected: connected) },
            sessionStore: sessions)
        gateway.attach(broker)
    }

    public func run() async throws {
        // The shadow is made whole from history before any device can post again.
        try await gateway.telemetry.start()
        // Nobody is connected yet, whatever the registry says from the last run.
        let settled = try await gateway.store.settleDevicesLeftOnline()
        if settled > 0 {
            gateway.logger.notice(
                "devices left online by the last run set offline", metadata: ["devices": "\(settled)"])
        }
        // The last changes (deliveries acknowledged as the connections closed) are committed
        // before the database closes.
        do {
            try await cancelWhenGracefulShutdown {
                try await broker.run(onListening: { [gateway] _ in gateway.listening.store(true, ordering: .relaxed) })
            }
            await sessions.idle()
        } catch {
            await sessions.idle()
            // Stopping because the server is shutting down is a clean end, not a failure.
            if Task.isShuttingDownGracefully || error is CancellationError { return }
            throw error
        }
    }
}

/// Deletes telemetry older than the retention setting: at start, then every hour.
public struct TelemetryRetentionService: Service {
    package let store: Store
    package let days: Int
    package let logger: Logger

    public init(store: Store, days: Int, logger: Logger) {
        self.store = store
        self.days = days
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let deleted = try await store.pruneTelemetry(before: nowMillis() - Millis(days) * 86_400_000)
                    if deleted > 0 {
                        logger.info("telemetry pruned", metadata: ["rows": "\(deleted)", "days": "\(days)"])
                    }
                } catch {
                    logger.warning("telemetry not pruned", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(3600))
            }
        }
    }
}
