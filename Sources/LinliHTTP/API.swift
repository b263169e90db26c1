import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliStorage
import LinliThings
import Logging
import Synchronization

/// The kernel's JSON routes: signing in and out, the caller, their tokens; the audit log and the
/// event log with its live stream.
struct API: ModuleRoutes {
    let services: AppServices

    func register(_ api: RouterGroup<AppContext>) {
        api.post("session", use: signIn)
        api.delete("session", use: signOut)
        api.get("me", use: me)
        api.get("tokens", use: listTokens)
        api.post("tokens", use: createToken)
        api.delete("tokens/:id", use: revokeToken)
        // audit and events
        api.get("audit", use: audit)
        api.get("events", use: events)
        api.get("events/stream", use: eventStream)
    }

    // MARK: identity

    struct SignIn: Decodable {
        var username: String
        var password: String
    }
    struct SessionInfo: Encodable {
        var account: Me
        var csrfToken: String
    }
    struct Me: Encodable {
        var id: ID
        var username: String
        var displayName: String
        var roles: [RoleBinding]
    }

    @Sendable func signIn(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let input = try await request.decodeJSON(SignIn.self, context: context, limit: BodyLimit.signIn)
        let (cookie, session, account, browser) = try await Authentication(services: services).signIn(
            username: input.username, password: input.password, remote: context.remoteAddress,
            browser: request.cookies[Authentication.browserCookieName]?.value, logger: context.logger)
        let bindings = try await store.bindings(accountId: account.id)
        var response = try JSON.response(
            SessionInfo(
                account: Me(
                    id: account.id, username: account.username, displayName: account.displayName, roles: bindings),
                csrfToken: session.csrfToken))
        response.setCookie(Authentication.cookie(cookie, configuration: services.configuration))
        response.setCookie(Authentication.browserCookie(browser, configuration: services.configuration))
        return response
    }

    @Sendable func signOut(_ request: Request, context: AppContext) async throws -> Response {
        if let cookie = request.cookies[IdentityMiddleware.cookieName]?.value {
            try await store.endSession(cookie: cookie)
        }
        services.callers.clear()
        var response = Response(status: .noContent)
        response.setCookie(Authentication.expiredCookie())
        return response
    }

    @Sendable func me(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        return try JSON.response(
            Me(id: caller.accountId, username: caller.username, displayName: caller.displayName, roles: caller.bindings)
        )
    }

    struct TokenInput: Decodable { var name: String }
    struct TokenView: Encodable {
        var id: ID
        var name: String
        var createdAt: Millis
        var lastUsedAt: Millis?
        var revokedAt: Millis?
        var token: String?
    }

    @Sendable func listTokens(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        let tokens = try await store.tokens(accountId: caller.accountId)
        return try JSON.response(
            Items(
                tokens.map {
                    TokenView(
                        id: $0.id, name: $0.name, createdAt: $0.createdAt, lastUsedAt: $0.lastUsedAt,
                        revokedAt: $0.revokedAt, token: nil)
                }))
    }

    @Sendable func createToken(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let caller = try context.requireCaller()
        let input = try await request.decodeJSON(TokenInput.self, context: context)
        var v = Validator()
        let name = v.text(input.name, "name", max: 100)
        try v.check()
        let (token, record) = try await store.createToken(
            accountId: caller.accountId, name: name!, actor: context.principal)
        return try JSON.response(
            TokenView(
                id: record.id, name: record.name, createdAt: record.createdAt, lastUsedAt: nil, revokedAt: nil,
                token: token), status: .created)
    }

    @Sendable func revokeToken(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        try await store.revokeToken(
            id: try context.parameters.require("id"), accountId: caller.accountId, actor: context.principal)
        services.callers.clear()
        return Response(status: .noContent)
    }

    // MARK: audit and events

    @Sendable func audit(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.viewAudit)
        var q = QueryReader(request)
        let action = q.string("action")
        let subjectId = q.string("subjectId")
        let page = q.page()
        try q.check()
        return try JSON.response(
            try await store.read { db in
                try await AuditLog.list(db, scope: scope, action: action, subjectId: subjectId, page: page)
            })
    }

    @Sendable func events(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.viewEvents)
        var q = QueryReader(request)
        let after = q.int("after", in: 0...Int.max, default: 0)
        let limit = q.int("limit", in: 1...PageRequest.maxLimit, default: 100)
        try q.check()
        return try JSON.response(
            Items(
                try await store.read { db in
                    try await EventLog.read(db, after: Int64(after), limit: limit, scope: scope)
                }))
    }

    @Sendable func eventStream(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.viewEvents)
        var q = QueryReader(request)
        var after = Int64(q.int("after", in: 0...Int.max, default: -1))
        try q.check()
        if let lastId = request.headers[HTTPField.Name("Last-Event-ID")!], let seq = Int64(lastId) { after = seq }
        let store = self.store
        if after < 0 { after = try await store.read { db in try await EventLog.latestSeq(db) } }
        return EventStream.response(store: store, scope: scope, after: after) { event in
            let data = (try? JSON.encoder.encode(event)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            return (event.type, data)
        }
    }
}
