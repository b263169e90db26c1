import LinliStorage

extension Schema {
    /// Accounts, their role bindings, sessions and API tokens (the rest of version 2 is the kernel's audit log).
    public static let identity = Schema(
        core: [
            Migration(version: 2, name: "identity and access") { _ in
                [
                    """
                    CREATE TABLE accounts (
                        id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
                        password_hash TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL,
                        password_changed_at BIGINT NOT NULL)
                    """,
                    """
                    CREATE TABLE role_bindings (
                        id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), role TEXT NOT NULL,
                        community_id TEXT, organisation_id TEXT, grid_id TEXT, household_id TEXT, created_at BIGINT NOT NULL)
                    """,
                    "CREATE INDEX role_bindings_account ON role_bindings (account_id)",
                    """
                    CREATE TABLE sessions (
                        id_hash TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), csrf_token TEXT NOT NULL,
                        created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)
                    """,
                    """
                    CREATE TABLE api_tokens (
                        id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
                        token_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, last_used_at BIGINT, revoked_at BIGINT)
                    """,
                ]
            },
            // One row per grant: an identical binding granted twice (which earlier versions
            // accepted) is removed first, keeping the earliest (its id is the one audited as
            // granted first), then a unique index makes a second one impossible. NULLs are distinct
            // in a unique index on both engines, so the scope's columns are indexed through
            // COALESCE, as `Store.holdsAlready` compares them.
            Migration(version: 22, name: "role bindings unique") { _ in
                [
                    """
                    DELETE FROM role_bindings WHERE EXISTS (
                        SELECT 1 FROM role_bindings e WHERE e.account_id = role_bindings.account_id
                        AND e.role = role_bindings.role
                        AND COALESCE(e.community_id, '') = COALESCE(role_bindings.community_id, '')
                        AND COALESCE(e.organisation_id, '') = COALESCE(role_bindings.organisation_id, '')
                        AND COALESCE(e.grid_id, '') = COALESCE(role_bindings.grid_id, '')
                        AND COALESCE(e.household_id, '') = COALESCE(role_bindings.household_id, '')
                        AND (e.created_at < role_bindings.created_at
                            OR (e.created_at = role_bindings.created_at AND e.id < role_bindings.id)))
                    """,
                    """
                    CREATE UNIQUE INDEX role_bindings_unique ON role_bindings (
                        account_id, role, COALESCE(community_id, ''), COALESCE(organisation_id, ''),
                        COALESCE(grid_id, ''), COALESCE(household_id, ''))
                    """,
                ]
            },
            // The language an account chose for its pages; NULL: the browser's, else Chinese.
            Migration(version: 25, name: "account language") { _ in
                ["ALTER TABLE accounts ADD COLUMN language TEXT"]
            },
        ]
    )
}
