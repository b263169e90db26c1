import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

extension Schema {
    /// Work orders, their steps and settings, Open311 keys and photos.
    public static let workOrders = Schema(
        core: [
            Migration(version: 11, name: "work orders") { _ in
                [
                    """
                    CREATE TABLE work_orders (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), number TEXT NOT NULL,
                        category TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL, source TEXT NOT NULL, status TEXT NOT NULL,
                        reporter_account_id TEXT, reporter_name TEXT NOT NULL, reporter_phone TEXT NOT NULL,
                        household_id TEXT, building_id TEXT, location TEXT NOT NULL,
                        organisation_id TEXT, assignee_account_id TEXT, assignee_name TEXT, alarm_id TEXT,
                        due_at BIGINT NOT NULL, overdue_at BIGINT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
                        resolved_at BIGINT, closed_at BIGINT, rating INTEGER, rating_comment TEXT, reopen_count INTEGER NOT NULL)
                    """,
                    "CREATE UNIQUE INDEX work_orders_number ON work_orders (community_id, number)",
                    "CREATE INDEX work_orders_community ON work_orders (community_id, status, created_at)",
                    "CREATE INDEX work_orders_due ON work_orders (due_at)",
                    "CREATE INDEX work_orders_reporter ON work_orders (reporter_account_id)",
                    // Every step, who and when: the work order's timeline.
                    """
                    CREATE TABLE work_order_steps (
                        id TEXT PRIMARY KEY, work_order_id TEXT NOT NULL REFERENCES work_orders(id), community_id TEXT NOT NULL, at BIGINT NOT NULL,
                        actor_id TEXT, actor_name TEXT NOT NULL, step TEXT NOT NULL, from_status TEXT, to_status TEXT NOT NULL, note TEXT NOT NULL)
                    """,
                    "CREATE INDEX work_order_steps_order ON work_order_steps (work_order_id, at)",
                    // Per community and category: who handles it by default, how long it may take, how it is dispatched.
                    """
                    CREATE TABLE work_order_settings (
                        community_id TEXT NOT NULL REFERENCES communities(id), category TEXT NOT NULL, organisation_id TEXT,
                        deadline_hours INTEGER NOT NULL, dispatch TEXT NOT NULL, team TEXT NOT NULL, next_in_turn INTEGER NOT NULL,
                        PRIMARY KEY (community_id, category))
                    """,
                ]
            },
            Migration(version: 12, name: "Open311") { _ in
                [
                    // Keys for third-party reporters (a city app, a hotline system): only the hash is kept.
                    """
                    CREATE TABLE open311_keys (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                        key_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, revoked_at BIGINT)
                    """,
                    "ALTER TABLE work_orders ADD COLUMN lat DOUBLE PRECISION",
                    "ALTER TABLE work_orders ADD COLUMN lon DOUBLE PRECISION",
                    "ALTER TABLE work_orders ADD COLUMN media_url TEXT",
                    "ALTER TABLE work_orders ADD COLUMN reporter_email TEXT NOT NULL DEFAULT ''",
                    "ALTER TABLE work_orders ADD COLUMN open311_key_id TEXT",
                ]
            },
            Migration(version: 13, name: "work order photos") { _ in
                [
                    // The photo files live in the data folder; the rows say whose, what kind and how big.
                    """
                    CREATE TABLE work_order_photos (
                        id TEXT PRIMARY KEY, work_order_id TEXT NOT NULL REFERENCES work_orders(id), community_id TEXT NOT NULL,
                        content_type TEXT NOT NULL, size BIGINT NOT NULL, file TEXT NOT NULL, uploaded_by TEXT NOT NULL, created_at BIGINT NOT NULL)
                    """,
                    "CREATE INDEX work_order_photos_order ON work_order_photos (work_order_id, created_at)",
                ]
            },
            Migration(version: 26, name: "staff roster") { _ in
                [
                    // Dispatch's part of each member of staff: the categories they handle and when they work.
                    """
                    CREATE TABLE work_order_roster (
                        staff_id TEXT PRIMARY KEY REFERENCES staff(id), community_id TEXT NOT NULL REFERENCES communities(id),
                        skills TEXT NOT NULL, days INTEGER NOT NULL, shift_start INTEGER NOT NULL, shift_end INTEGER NOT NULL,
                        updated_at BIGINT NOT NULL)
                    """,
                    // A work order given to a member of staff, who may have no account (told by SMS).
                    "ALTER TABLE work_orders ADD COLUMN assignee_staff_id TEXT",
                ]
            },
            Migration(version: 27, name: "preferred visit times") { _ in
                [
                    // When the reporter would like someone to come (a resident's report about their home).
                    "ALTER TABLE work_orders ADD COLUMN preferred_from BIGINT",
                    "ALTER TABLE work_orders ADD COLUMN preferred_to BIGINT",
                ]
            },
        ]
    )
}
