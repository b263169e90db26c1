import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

extension Schema {
    /// Webhook deliveries, inboxes (a part of version 10), notices and receipts, preferences and outbound messages.
    public static let messaging = Schema(
        core: [
            Migration(version: 9, name: "webhook deliveries") { _ in
                [
                    // Each call a rule makes to another system, kept until it is taken or given up on,
                    // so a restart loses none and people can see what was sent and what came back.
                    """
                    CREATE TABLE webhook_deliveries (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL, rule_id TEXT NOT NULL, url TEXT NOT NULL, secret_cipher TEXT NOT NULL,
                        payload TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, next_at BIGINT NOT NULL,
                        last_status INTEGER, last_error TEXT, created_at BIGINT NOT NULL, delivered_at BIGINT)
                    """,
                    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at)",
                    "CREATE INDEX webhook_deliveries_rule ON webhook_deliveries (rule_id, created_at)",
                ]
            },
            Migration(version: 10, name: "notifications and alarm escalation") { _ in
                [
                    // A person's inbox: what rules (and later notices) tell them.
                    """
                    CREATE TABLE notifications (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL, account_id TEXT NOT NULL REFERENCES accounts(id),
                        title TEXT NOT NULL, body TEXT NOT NULL, severity TEXT, link TEXT, subject_type TEXT, subject_id TEXT,
                        created_at BIGINT NOT NULL, read_at BIGINT)
                    """,
                    "CREATE INDEX notifications_account ON notifications (account_id, created_at)",
                ]
            },
            Migration(version: 14, name: "notices and receipts") { _ in
                [
                    """
                    CREATE TABLE notices (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), title TEXT NOT NULL, body TEXT NOT NULL,
                        audience TEXT NOT NULL, question TEXT, options TEXT NOT NULL, households BIGINT NOT NULL,
                        created_by TEXT NOT NULL, created_at BIGINT NOT NULL)
                    """,
                    "CREATE INDEX notices_community ON notices (community_id, created_at)",
                    // One row per household reached: when someone there read it, and what they answered.
                    """
                    CREATE TABLE notice_receipts (
                        notice_id TEXT NOT NULL REFERENCES notices(id), household_id TEXT NOT NULL, community_id TEXT NOT NULL,
                        delivered_at BIGINT NOT NULL, read_at BIGINT, read_by TEXT, answer TEXT, answered_at BIGINT, answered_by TEXT,
                        PRIMARY KEY (notice_id, household_id))
                    """,
                    "CREATE INDEX notice_receipts_household ON notice_receipts (household_id)",
                ]
            },
            Migration(version: 15, name: "notification preferences and outbound messages") { _ in
                [
                    // How each person wants to be told; phone and e-mail address encrypted.
                    """
                    CREATE TABLE notification_preferences (
                        account_id TEXT PRIMARY KEY REFERENCES accounts(id), sms BOOLEAN NOT NULL, email BOOLEAN NOT NULL,
                        phone_cipher TEXT, email_cipher TEXT, quiet_from TEXT, quiet_to TEXT, updated_at BIGINT NOT NULL)
                    """,
                    // Copies of inbox messages for SMS and e-mail, and notices sent to residents'
                    // registered phones, sent by the outbound worker.
                    """
                    CREATE TABLE outbound_messages (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL, account_id TEXT, notification_id TEXT, person_id TEXT, notice_id TEXT,
                        channel TEXT NOT NULL, address_cipher TEXT NOT NULL, address_masked TEXT NOT NULL,
                        subject TEXT NOT NULL, body TEXT NOT NULL, severity TEXT, status TEXT NOT NULL, due_at BIGINT NOT NULL,
                        attempts INTEGER NOT NULL, last_error TEXT, sent_at BIGINT, created_at BIGINT NOT NULL)
                    """,
                    "CREATE INDEX outbound_messages_due ON outbound_messages (status, due_at)",
                    "CREATE INDEX outbound_messages_community ON outbound_messages (community_id, created_at)",
                    "CREATE INDEX outbound_messages_notice ON outbound_messages (notice_id)",
                ]
            },
            Migration(version: 16, name: "notice answer deadlines") { _ in
                [
                    // When households should have answered by, and when Linli found some had not.
                    "ALTER TABLE notices ADD COLUMN answer_by BIGINT",
                    "ALTER TABLE notices ADD COLUMN unanswered_at BIGINT",
                    "CREATE INDEX notices_answer_by ON notices (answer_by)",
                ]
            },
            Migration(version: 23, name: "notice vacant households left out") { _ in
                [
                    // Vacant flats are no longer reached; how many the audience named is kept so the
                    // notice page can say so (they are not "unreachable", nobody lives there).
                    "ALTER TABLE notices ADD COLUMN vacant_left_out BIGINT NOT NULL DEFAULT 0"
                ]
            },
            Migration(version: 24, name: "scheduled notices") { _ in
                [
                    // A notice can wait for its send time: kept here, so a restart loses none; what
                    // applies when it goes out (the answer window, texting) is kept with it.
                    "ALTER TABLE notices ADD COLUMN status TEXT NOT NULL DEFAULT 'sent'",
                    "ALTER TABLE notices ADD COLUMN send_at BIGINT",
                    "ALTER TABLE notices ADD COLUMN answer_within_hours BIGINT",
                    "ALTER TABLE notices ADD COLUMN sms_residents BOOLEAN NOT NULL DEFAULT FALSE",
                    "CREATE INDEX notices_due ON notices (status, send_at)",
                ]
            },
        ]
    )
}
