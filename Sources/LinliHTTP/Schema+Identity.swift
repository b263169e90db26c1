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
            }
        ]
    )
}
