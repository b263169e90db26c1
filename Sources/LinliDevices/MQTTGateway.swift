import Foundation
import LinliBrokerStore
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliMQTT
import LinliStorage
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

/// Decides who may use the embedded broker. For now: integration accounts (username, bcrypt
/// password, topic lists). Anything else is refused: there is no anonymous access.
///
/// A reconnect with the password last verified is checked without bcrypt, bcrypt runs only so many
/// at once (`PasswordChecks`), and failures are throttled per account and address as the web
/// sign-in's are (`LoginThrottle`). A throttled or busy sign-in gets CONNACK 3 (server unavailable,
/// try again later), not "bad user name or password", which a client may take as final.
package struct IntegrationAuthenticator: MQTTAuthenticator {
    package let store: Store
    package let throttle: LoginThrottle
    package let logger: Logger
    static let accepted = Counter(label: "linli_mqtt_sign_ins_total", dimensions: [("result", "accepted")])
    static let refused = Counter(label: "linli_mqtt_sign_ins_total", dimensions: [("result", "refused")])
    static let throttled = Counter(label: "linli_mqtt_sign_ins_total", dimensions: [("result", "throttled")])
    static let busy = Counter(label: "linli_mqtt_sign_ins_total", dimensions: [("result", "busy")])
    static let busyCount = Atomic<Int>(0)

    package func authenticate(_ connect: Connect, connection: MQTTConnectionInfo) async -> MQTTAuthentication {
        guard let username = connect.username, let password = connect.password.map({ String(buffer: $0) }) else {
            Self.refused.increment()
            return .refused(.notAuthorized)
        }
        let keys = await throttle.keys(via: "mqtt", account: username, remote: connection.place)
        if let wait = await throttle.retryAfter(keys) {
            Self.throttled.increment()
            logger.notice(
                "MQTT sign-in throttled",
                metadata: ["username": "\(username)", "remote": "\(connection.remote ?? "-")", "wait": "\(wait) s"])
            return .refused(.serverUnavailable)
        }
        let account: MQTTAccount?
        do { account = try await store.mqttAccount(username: username) } catch {
            logger.error("MQTT sign-in failed: accounts could not be read", metadata: ["error": "\(error)"])
            return .refused(.serverUnavailable)
        }
        let ok: Bool
        do {
            // An unknown username costs a check all the same (the decoy), so timing tells nothing.
            ok = try await PasswordChecks.shared.verify(
                password, hash: account?.passwordHash ?? Passwords.decoy, account: account.map { "mqtt " + $0.username }
            )
        } catch {
            Self.busy.increment()
            // A flood would fill the log: the first, then one in a thousand.
            let n = Self.busyCount.add(1, ordering: .relaxed).newValue
            if n == 1 || n % 1_000 == 0 {
                logger.notice(
                    "MQTT sign-in refused for now: too many password checks at once",
                    metadata: ["username": "\(username)", "remote": "\(connection.remote ?? "-")", "refused": "\(n)"])
            }
            return .refused(.serverUnavailable)
        }
        guard let account, ok else {
            await throttle.failed(keys)
            Self.refused.increment()
            logger.notice(
                "MQTT sign-in failed", metadata: ["username": "\(username)", "remote": "\(connection.remote ?? "-")"])
            return .refused(.badUsernameOrPassword)
        }
        await throttle.succeeded(keys)
        guard account.status == .active else {
            Self.refused.increment()
            return .refused(.notAuthorized)
        }
        Self.accepted.increment()
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
