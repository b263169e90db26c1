import SQLKit

extension Schema {
    /// The kernel's own tables: the audit log (a part of version 2) and the event log.
    public static let storage = Schema(
        core: [
            Migration(version: 2, name: "identity and access") { _ in
                [
                    """
                    CREATE TABLE audit_log (
                        id TEXT PRIMARY KEY, at BIGINT NOT NULL, actor_id TEXT, actor_name TEXT NOT NULL, action TEXT NOT NULL,
                        subject_type TEXT NOT NULL, subject_id TEXT NOT NULL, community_id TEXT, before_json TEXT,
                        after_json TEXT, remote TEXT)
                    """,
                    "CREATE INDEX audit_log_at ON audit_log (at)",
                ]
            },
            Migration(version: 3, name: "event log") { engine in
                let seq = engine == .sqlite ? "seq INTEGER PRIMARY KEY AUTOINCREMENT" : "seq BIGSERIAL PRIMARY KEY"
                return [
                    """
                    CREATE TABLE events (
                        \(seq), id TEXT NOT NULL UNIQUE, community_id TEXT, type TEXT NOT NULL, subject_type TEXT NOT NULL,
                        subject_id TEXT NOT NULL, actor_id TEXT, at BIGINT NOT NULL, payload TEXT NOT NULL)
                    """,
                    "CREATE INDEX events_community ON events (community_id, seq)",
                    "CREATE TABLE event_checkpoints (consumer TEXT PRIMARY KEY, seq BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
                ]
            },
        ]
    )
}
