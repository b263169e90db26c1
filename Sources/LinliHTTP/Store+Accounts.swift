import Foundation
import LinliCore
import LinliStorage
import SQLKit

/// A sign-in account. The password is kept only as a bcrypt hash, never returned by the API.
public struct Account: Codable, Sendable, Equatable {
    public var id: ID
    public var username: String
    public var displayName: String
    public var passwordHash: String
    public var status: AccountStatus
    public var createdAt: Millis
    public var passwordChangedAt: Millis
    /// The language the account chose for its pages (the header's switch); nil until it does.
    public var language: Language?
    public init(
        id: ID = newID(), username: String, displayName: String, passwordHash: String, status: AccountStatus = .active,
        createdAt: Millis = nowMillis()
    ) {
        self.id = id
        self.username = username
        self.displayName = displayName
        self.passwordHash = passwordHash
        self.status = status
        self.createdAt = createdAt
        self.passwordChangedAt = createdAt
    }
}

extension Account: Record { public static let table = "accounts" }
extension RoleBinding: Record { public static let table = "role_bindings" }

public struct AccountView: Codable, Sendable, Equatable {
    public var id: ID
    public var username: String
    public var displayName: String
    public var status: AccountStatus
    public var roles: [RoleBinding]
    public init(id: ID, username: String, displayName: String, status: AccountStatus, roles: [RoleBinding]) {
        self.id = id
        self.username = username
        self.displayName = displayName
        self.status = status
        self.roles = roles
    }
}

public struct ApiToken: Codable, Sendable, Equatable {
    public var id: ID
    public var accountId: ID
    public var name: String
    public var tokenHash: String
    public var createdAt: Millis
    public var lastUsedAt: Millis?
    public var revokedAt: Millis?
}

extension ApiToken: Record { public static let table = "api_tokens" }

public struct WebSession: Codable, Sendable, Equatable {
    public var idHash: String
    public var accountId: ID
    public var csrfToken: String
    public var createdAt: Millis
    public var expiresAt: Millis
}

extension Store {
    public func createAccount(_ account: Account, actor: Principal) async throws {
        try await write { db in
            let taken = try await db.count(
                "SELECT COUNT(*) AS n FROM accounts WHERE username = \(bind: account.username)")
            if taken > 0 { throw StoreError.conflict(field: "username", reason: "is already taken") }
            try await db.insert(account)
            var shown = account
            shown.passwordHash = "[hidden]"
            try await Change.record(
                db, actor: actor, communityId: nil, type: "account.created", subjectType: "account",
                subjectId: account.id, after: shown)
        }
    }

    public func account(username: String) async throws -> Account? {
        try await read { db in
            try await db.all(Account.self, "SELECT * FROM accounts WHERE username = \(bind: username)").first
        }
    }

    public func account(id: ID) async throws -> Account? {
        try await read { db in try await db.find(Account.self, id) }
    }

    /// The language the account's pages speak from now on, wherever it signs in.
    public func setLanguage(accountId: ID, _ language: Language) async throws {
        try await write { db in
            try await db.raw("UPDATE accounts SET language = \(bind: language.rawValue) WHERE id = \(bind: accountId)")
                .run()
        }
    }

    /// A new password ends every web session of the account and, unless `keepTokens`, revokes its
    /// API tokens: whoever learnt the old password may have made one. Keeping them is recorded in
    /// the audit log. Returns the tokens revoked.
    @discardableResult
    public func setPassword(accountId: ID, hash: String, keepTokens: Bool = false, actor: Principal) async throws
        -> [ApiToken]
    {
        try await write { db in
            guard var account = try await db.find(Account.self, accountId) else { throw StoreError.notFound("account") }
            let now = nowMillis()
            account.passwordHash = hash
            account.passwordChangedAt = now
            try await db.update(account)
            // A new password ends every other way in that the old one opened.
            try await db.raw("DELETE FROM sessions WHERE account_id = \(bind: accountId)").run()
            let live = try await db.all(
                ApiToken.self,
                "SELECT * FROM api_tokens WHERE account_id = \(bind: accountId) AND revoked_at IS NULL ORDER BY created_at"
            )
            if keepTokens {
                if !live.isEmpty {
                    try await AuditLog.record(
                        db, actor: actor, action: "account.password_changed.tokens_kept", subjectType: "account",
                        subjectId: accountId, communityId: nil)
                }
            } else {
                try await db.raw(
                    "UPDATE api_tokens SET revoked_at = \(bind: now) WHERE account_id = \(bind: accountId) AND revoked_at IS NULL"
                ).run()
            }
            try await Change.record(
                db, actor: actor, communityId: nil, type: "account.password_changed", subjectType: "account",
                subjectId: accountId,
                after: ["tokens": keepTokens ? "kept \(live.count)" : "revoked \(live.count)"])
            return keepTokens ? [] : live
        }
    }

    /// Grants a role. Every path that grants one (the API, the access page, `linli user create`,
    /// the demo) comes here, so the checks hold for all of them: each place the binding names must
    /// exist in the binding's community (a binding to a missing or foreign household would reach
    /// nothing today and whatever takes that id tomorrow), and a binding identical to one the
    /// account holds is refused (409) rather than stored twice (a unique index, migration 22,
    /// backs this up).
    public func bindRole(_ binding: RoleBinding, actor: Principal) async throws {
        try await write { db in
            guard try await db.find(Account.self, binding.accountId) != nil else {
                throw StoreError.notFound("account")
            }
            try await Self.checkPlaces(of: binding, db)
            if try await Self.holdsAlready(binding, db) {
                throw StoreError.conflict(
                    field: "role", reason: "is already granted to this account with the same scope")
            }
            do {
                try await db.insert(binding)
            } catch let error where error.isUniqueViolation {
                // Granted by someone else between the check and the insert.
                throw StoreError.conflict(
                    field: "role", reason: "is already granted to this account with the same scope")
            }
            try await Change.record(
                db, actor: actor, communityId: binding.communityId, type: "role.granted", subjectType: "account",
                subjectId: binding.accountId, after: binding)
        }
    }

    /// The checks of `bindRole` without granting: for a caller that must know before it does
    /// something else first (`linli user create` checks before it creates the account).
    public func checkRoleBinding(_ binding: RoleBinding) async throws {
        try await read { db in try await Self.checkPlaces(of: binding, db) }
    }

    /// Refuses (422, naming the field) a place that does not exist or is of another community,
    /// and any place on a binding without a community (a platform administrator's).
    static func checkPlaces(of binding: RoleBinding, _ db: any SQLDatabase) async throws {
        let places: [(field: String, table: String, id: ID?, what: String)] = [
            ("organisationId", "organisations", binding.organisationId, "an organisation"),
            ("gridId", "grids", binding.gridId, "a grid"),
            ("householdId", "households", binding.householdId, "a household"),
        ]
        var issues: [FieldIssue] = []
        guard let communityId = binding.communityId else {
            for place in places where place.id != nil {
                issues.append(FieldIssue(place.field, "must be absent for \(binding.role.rawValue)"))
            }
            if !issues.isEmpty { throw ValidationFailure(issues) }
            return
        }
        let known = try await db.count("SELECT COUNT(*) AS n FROM communities WHERE id = \(bind: communityId)")
        if known == 0 { throw ValidationFailure("communityId", "is not a community") }
        for place in places {
            guard let id = place.id else { continue }
            // The table name is one of the three above, never input.
            let found = try await db.count(
                "SELECT COUNT(*) AS n FROM \(unsafeRaw: place.table) WHERE id = \(bind: id) AND community_id = \(bind: communityId)"
            )
            if found == 0 { issues.append(FieldIssue(place.field, "is not \(place.what) of this community")) }
        }
        if !issues.isEmpty { throw ValidationFailure(issues) }
    }

    /// Whether the account holds this very role with this very reach already. NULLs compare as
    /// equal here (COALESCE), as they do in the unique index.
    static func holdsAlready(_ binding: RoleBinding, _ db: any SQLDatabase) async throws -> Bool {
        try await db.count(
            """
            SELECT COUNT(*) AS n FROM role_bindings WHERE account_id = \(bind: binding.accountId)
            AND role = \(bind: binding.role.rawValue)
            AND COALESCE(community_id, '') = \(bind: binding.communityId ?? "")
            AND COALESCE(organisation_id, '') = \(bind: binding.organisationId ?? "")
            AND COALESCE(grid_id, '') = \(bind: binding.gridId ?? "")
            AND COALESCE(household_id, '') = \(bind: binding.householdId ?? "")
            """) > 0
    }

    public func revokeRole(_ bindingId: ID, scope: Scope, actor: Principal) async throws {
        try await write { db in
            guard let binding = try await db.find(RoleBinding.self, bindingId),
                scope.everything || (binding.communityId.map { scope.communities.contains($0) } ?? false)
            else { throw StoreError.notFound("role binding") }
            if binding.role == .platformAdmin {
                // Nobody could create a community or grant a role any more, except from the
                // server's shell: the last platform administrator stays.
                let others = try await db.count(
                    """
                    SELECT COUNT(DISTINCT b.account_id) AS n FROM role_bindings b JOIN accounts a ON a.id = b.account_id
                    WHERE b.role = \(bind: Role.platformAdmin.rawValue) AND a.status = \(bind: AccountStatus.active.rawValue)
                    AND b.id <> \(bind: binding.id)
                    """)
                if others == 0 {
                    throw StoreError.conflict(
                        field: "id",
                        reason:
                            "is the last platform administrator's role: grant platform_admin to another account first")
                }
            }
            try await db.raw("DELETE FROM role_bindings WHERE id = \(bind: bindingId)").run()
            try await Change.record(
                db, actor: actor, communityId: binding.communityId, type: "role.revoked", subjectType: "account",
                subjectId: binding.accountId, before: binding)
        }
    }

    public func bindings(accountId: ID) async throws -> [RoleBinding] {
        try await read { db in
            try await db.all(
                RoleBinding.self,
                "SELECT * FROM role_bindings WHERE account_id = \(bind: accountId) ORDER BY created_at, id")
        }
    }

    /// Accounts holding a role in the caller's communities (all accounts for platform administrators).
    public func accounts(scope: Scope) async throws -> [AccountView] {
        try await read { db in
            let filter: SQLQueryString =
                scope.everything
                ? "1 = 1"
                : "id IN (SELECT account_id FROM role_bindings WHERE \(SQLQueryString.isIn("community_id", scope.communities)))"
            let accounts = try await db.all(Account.self, "SELECT * FROM accounts WHERE \(filter) ORDER BY username")
            let bindings = try await db.all(
                RoleBinding.self,
                "SELECT * FROM role_bindings WHERE \(SQLQueryString.isIn("account_id", Set(accounts.map(\.id))))")
            let byAccount = Dictionary(grouping: bindings, by: \.accountId)
            return accounts.map { a in
                AccountView(
                    id: a.id, username: a.username, displayName: a.displayName, status: a.status,
                    roles: (byAccount[a.id] ?? []).filter {
                        scope.everything || ($0.communityId.map { scope.communities.contains($0) } ?? false)
                    })
            }
        }
    }

    // MARK: web sessions (only a hash of the cookie value is stored)

    public func createSession(accountId: ID, lifetime: Duration) async throws -> (cookie: String, session: WebSession) {
        let cookie = Digest.randomToken()
        let now = nowMillis()
        let session = WebSession(
            idHash: Digest.sha256Hex(cookie), accountId: accountId, csrfToken: Digest.randomToken(bytes: 24),
            createdAt: now, expiresAt: now + Millis(lifetime.components.seconds * 1000))
        try await database.write { db in
            try await db.insert(into: "sessions").model(session, keyEncodingStrategy: .convertToSnakeCase).run()
        }
        return (cookie, session)
    }

    public func session(cookie: String) async throws -> WebSession? {
        try await read { db in
            try await db.raw(
                "SELECT * FROM sessions WHERE id_hash = \(bind: Digest.sha256Hex(cookie)) AND expires_at > \(bind: nowMillis())"
            )
            .first(decoding: WebSession.self, keyDecodingStrategy: .snakeCase)
        }
    }

    public func endSession(cookie: String) async throws {
        try await database.write { db in
            try await db.raw("DELETE FROM sessions WHERE id_hash = \(bind: Digest.sha256Hex(cookie))").run()
        }
    }

    // MARK: API tokens (bearer; only a hash is stored, the token is shown once)

    public func createToken(accountId: ID, name: String, actor: Principal) async throws -> (
        token: String, record: ApiToken
    ) {
        let token = "lnl_" + Digest.randomToken()
        let record = ApiToken(
            id: newID(), accountId: accountId, name: name, tokenHash: Digest.sha256Hex(token), createdAt: nowMillis(),
            lastUsedAt: nil, revokedAt: nil)
        try await write { db in
            try await db.insert(record)
            var shown = record
            shown.tokenHash = "[hidden]"
            try await Change.record(
                db, actor: actor, communityId: nil, type: "token.created", subjectType: "account", subjectId: accountId,
                after: shown)
        }
        return (token, record)
    }

    public func tokens(accountId: ID) async throws -> [ApiToken] {
        try await read { db in
            try await db.all(
                ApiToken.self, "SELECT * FROM api_tokens WHERE account_id = \(bind: accountId) ORDER BY created_at DESC"
            )
        }
    }

    public func revokeToken(id: ID, accountId: ID, actor: Principal) async throws {
        try await write { db in
            guard var token = try await db.find(ApiToken.self, id), token.accountId == accountId else {
                throw StoreError.notFound("token")
            }
            if token.revokedAt != nil { return }
            token.revokedAt = nowMillis()
            try await db.update(token)
            try await Change.record(
                db, actor: actor, communityId: nil, type: "token.revoked", subjectType: "account", subjectId: accountId)
        }
    }

    public func account(token: String) async throws -> Account? {
        try await read { db in
            try await db.all(
                Account.self,
                "SELECT a.* FROM accounts a JOIN api_tokens t ON t.account_id = a.id WHERE t.token_hash = \(bind: Digest.sha256Hex(token)) AND t.revoked_at IS NULL"
            ).first
        }
    }

    /// The buildings of each grid, which a grid worker's role binding reaches.
    public func gridBuildings(_ gridIds: [ID]) async throws -> [ID: Set<ID>] {
        if gridIds.isEmpty { return [:] }
        return try await read { db in
            struct Row: Decodable {
                package var gridId: ID
                package var buildingId: ID
            }
            let rows = try await db.raw(
                "SELECT grid_id, building_id FROM grid_buildings WHERE \(SQLQueryString.isIn("grid_id", Set(gridIds)))"
            )
            .all(decoding: Row.self, keyDecodingStrategy: .snakeCase)
            return Dictionary(grouping: rows, by: \.gridId).mapValues { Set($0.map(\.buildingId)) }
        }
    }
}
