import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliStorage
import LinliThings
import Logging
import Synchronization

/// The kernel's pages: the way in (signing in and out, the start page) and the caller's own account.
struct WebConsole: ModuleRoutes {
    let services: AppServices

    func register(_ router: Router<AppContext>) {
        router.get("/") { _, context in
            guard let caller = context.caller else { return Response.redirect(to: "/login") }
            return Response.redirect(to: caller.isResidentOnly ? "/app" : "/console")
        }
        router.get("/assets/:name") { _, context in
            guard let response = services.pages.asset(try context.parameters.require("name")) else {
                throw Problem.notFound("asset")
            }
            return response
        }
        router.get("/login", use: loginPage)
        router.post("/login", use: login)
        router.post("/logout", use: logout)
        router.get("/console/account", use: account)
        router.post("/console/account/password", use: changePassword)
        router.post("/console/account/tokens", use: createToken)
        router.post("/console/account/tokens/:id/revoke", use: revokeToken)
    }

    // MARK: sign in and out

    @Sendable func loginPage(_ request: Request, context: AppContext) async throws -> Response {
        let next = Self.safeNext(request.uri.queryParameters.get("next"))
        return try pages.render(
            "login",
            ["frame": Frame(title: "Sign in", context: AppContext.anonymous(context)), "next": next] as [String: Any])
    }

    @Sendable func login(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let form = try await request.formFields(context: context, limit: BodyLimit.signIn)
        let username = form["username"] ?? ""
        let next = Self.safeNext(form["next"])
        do {
            let (cookie, _, account, browser) = try await Authentication(services: services).signIn(
                username: username, password: form["password"] ?? "", remote: context.remoteAddress,
                browser: request.cookies[Authentication.browserCookieName]?.value, logger: context.logger)
            let bindings = try await store.bindings(accountId: account.id)
            let home = bindings.allSatisfy { $0.role == .resident } && !bindings.isEmpty ? "/app" : "/console"
            var response = Response.redirect(to: next.isEmpty ? home : next, type: .found)
            response.setCookie(Authentication.cookie(cookie, configuration: services.configuration))
            response.setCookie(Authentication.browserCookie(browser, configuration: services.configuration))
            return response
        } catch let problem as Problem {
            var response = try pages.render(
                "login",
                [
                    "frame": Frame(title: "Sign in", context: AppContext.anonymous(context)),
                    "error": problem.detail.map { problem.title + ". " + $0 } ?? problem.title,
                    "username": username, "next": next,
                ] as [String: Any], status: problem.status)
            if let retry = problem.retryAfter { response.headers[.retryAfter] = String(retry) }
            return response
        }
    }

    @Sendable func logout(_ request: Request, context: AppContext) async throws -> Response {
        if let cookie = request.cookies[IdentityMiddleware.cookieName]?.value {
            try await store.endSession(cookie: cookie)
        }
        services.callers.clear()
        var response = Response.redirect(to: "/login", type: .found)
        response.setCookie(Authentication.expiredCookie())
        return response
    }

    func accountPage(
        _ context: AppContext, message: String? = nil, error: String? = nil, newToken: String? = nil,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let caller = try context.requireCaller()
        struct TokenRow {
            var id: ID
            var name: String
            var created: String
            var revoked: Bool
        }
        let formatter = ISO8601DateFormatter()
        let tokens = try await store.tokens(accountId: caller.accountId).map {
            TokenRow(
                id: $0.id, name: $0.name,
                created: formatter.string(from: Date(timeIntervalSince1970: Double($0.createdAt) / 1000)),
                revoked: $0.revokedAt != nil)
        }
        return try pages.render(
            "account",
            [
                "frame": Frame(title: "Account", context: context), "roles": caller.bindings, "tokens": tokens,
                "liveTokens": tokens.filter { !$0.revoked }, "hasLiveTokens": tokens.contains { !$0.revoked },
                "message": message as Any, "error": error as Any, "newToken": newToken as Any,
            ] as [String: Any], status: status)
    }

    @Sendable func account(_ request: Request, context: AppContext) async throws -> Response {
        try await accountPage(context)
    }

    @Sendable func changePassword(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let caller = try context.requireCaller()
        let form = try await request.formFields(context: context)
        guard let account = try await store.account(id: caller.accountId),
            try await Passwords.verify(form["current"] ?? "", hash: account.passwordHash)
        else {
            return try await accountPage(
                context, error: "The current password is wrong.", status: .unprocessableContent)
        }
        do { try Passwords.validate(form["new"] ?? "", field: "new") } catch {
            return try await accountPage(
                context, error: "New password " + error.issues[0].reason + ".", status: .unprocessableContent)
        }
        try await store.setPassword(
            accountId: account.id, hash: try await Passwords.hash(form["new"] ?? ""),
            keepTokens: form["keepTokens"] == "on", actor: context.principal)
        services.callers.clear()
        // Changing the password ended every session, this one too: sign in again.
        var response = Response.redirect(to: "/login", type: .found)
        response.setCookie(Authentication.expiredCookie())
        return response
    }

    @Sendable func createToken(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let caller = try context.requireCaller()
        let form = try await request.formFields(context: context)
        var v = Validator()
        guard let name = v.text(form["name"], "name", max: 100) else {
            return try await accountPage(context, error: "Give the token a name.", status: .unprocessableContent)
        }
        let (token, _) = try await store.createToken(accountId: caller.accountId, name: name, actor: context.principal)
        return try await accountPage(context, message: "Token created.", newToken: token)
    }

    @Sendable func revokeToken(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        try await store.revokeToken(
            id: try context.parameters.require("id"), accountId: caller.accountId, actor: context.principal)
        services.callers.clear()
        return .redirect(to: "/console/account", type: .found)
    }

}
