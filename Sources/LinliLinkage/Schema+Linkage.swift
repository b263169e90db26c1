import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders
import SQLKit

extension Schema {
    /// Rules, their trigger states, alarms and their comments; alarm escalation (a part of version 10).
    public static let linkage = Schema(
        core: [
            Migration(version: 8, name: "rules and alarms") { _ in
                [
                    """
                    CREATE TABLE rules (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                        enabled BOOLEAN NOT NULL, definition TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
                    """,
                    "CREATE INDEX rules_community ON rules (community_id)",
                    // Triggers that last (a duration, an absence) keep their state here, written on
                    // transitions only, so timers survive a restart without a write per message.
                    """
                    CREATE TABLE rule_states (
                        rule_id TEXT NOT NULL, trigger_index INTEGER NOT NULL, device_id TEXT NOT NULL,
                        since BIGINT, holding BOOLEAN NOT NULL, fired BOOLEAN NOT NULL,
                        PRIMARY KEY (rule_id, trigger_index, device_id))
                    """,
                    """
                    CREATE TABLE alarms (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), type TEXT NOT NULL, severity TEXT NOT NULL,
                        source_type TEXT NOT NULL, source_id TEXT NOT NULL, source_name TEXT NOT NULL, building_id TEXT, household_id TEXT,
                        rule_id TEXT, message TEXT NOT NULL, detail TEXT NOT NULL, occurrences BIGINT NOT NULL,
                        first_at BIGINT NOT NULL, last_at BIGINT NOT NULL, acknowledged_at BIGINT, acknowledged_by TEXT,
                        cleared_at BIGINT, cleared_by TEXT, work_order_id TEXT)
                    """,
                    // One open alarm per source and type: a repeat counts, it does not flood.
                    "CREATE UNIQUE INDEX alarms_open ON alarms (source_id, type) WHERE cleared_at IS NULL",
                    "CREATE INDEX alarms_community ON alarms (community_id, last_at)",
                    """
                    CREATE TABLE alarm_comments (
                        id TEXT PRIMARY KEY, alarm_id TEXT NOT NULL REFERENCES alarms(id), author_id TEXT, author_name TEXT NOT NULL,
                        at BIGINT NOT NULL, text TEXT NOT NULL)
                    """,
                    "CREATE INDEX alarm_comments_alarm ON alarm_comments (alarm_id, at)",
                ]
            },
            Migration(version: 10, name: "notifications and alarm escalation") { _ in
                [
                    // An unacknowledged alarm's next escalation: which tier, and when.
                    "ALTER TABLE alarms ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0",
                    "ALTER TABLE alarms ADD COLUMN next_escalation_at BIGINT",
                    "CREATE INDEX alarms_escalation ON alarms (next_escalation_at)",
                ]
            },
        ]
    )
}
