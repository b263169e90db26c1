import Metrics

/// What the broker reports to `/metrics` about what it keeps for clients.
struct BrokerMetrics: Sendable {
    /// QoS 1 and 2 messages not kept because a session's queue was full (`queueLimit`).
    let dropped = Counter(label: "linli_mqtt_messages_dropped_total", dimensions: [("reason", "queue_full")])
    /// Messages whose expiry interval (MQTT 5) passed before they could be sent.
    let expiredMessages = Counter(
        label: "linli_mqtt_messages_dropped_total", dimensions: [("reason", "expired")])
    /// Messages larger than the receiving client's maximum packet size (MQTT 5).
    let tooLarge = Counter(label: "linli_mqtt_messages_dropped_total", dimensions: [("reason", "too_large")])
    /// Persistent sessions forgotten after their client stayed away longer than `sessionExpiry`.
    let expired = Counter(label: "linli_mqtt_sessions_expired_total")
    let persistentSessions = Gauge(label: "linli_mqtt_persistent_sessions")
    /// QoS 1 and 2 messages waiting in sessions' queues (not yet sent), in all.
    let queued = Gauge(label: "linli_mqtt_queued_messages")
    let retained = Gauge(label: "linli_mqtt_retained_messages")
}
