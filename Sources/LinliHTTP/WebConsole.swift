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
        router.post("/language", use: chooseLanguage)
        router.get("/console/account", use: account)
        router.get("/app/account", use: account)
        router.post("/console/account/password", use: changePassword)
        router.post("/console/account/tokens", use: createToken)
        router.post("/console/account/tokens/:id/revoke", use: revokeToken)
    }

    // MARK: language

    /// The header's switch: remembered in this browser (a cookie, also before signing in) and, when
    /// signed in, on the account, so that it holds wherever the account signs in next.
    @Sendable func chooseLanguage(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let form = try await request.formFields(context: context, limit: BodyLimit.signIn)
        guard let language = form["language"].flatMap(Language.init(rawValue:)) else {
            throw Problem.invalid(
                [FieldIssue("language", "must be one of " + Language.allCases.map(\.rawValue).joined(separator: ", "))])
        }
        if let caller = context.caller {
            try await store.setLanguage(accountId: caller.accountId, language)
            services.callers.clear()
        }
        let back = Self.safeNext(form["return"])
        var response = Response.redirect(to: back.isEmpty ? "/" : back, type: .found)
        response.setCookie(
            Cookie(
                name: IdentityMiddleware.languageCookieName, value: language.rawValue, maxAge: 400 * 86_400, path: "/",
                secure: services.configuration.secureCookies, httpOnly: true, sameSite: .lax))
        return response
    }

    // MARK: sign in and out

    @Sendable func loginPage(_ request: Request, context: AppContext) async throws -> Response {
        let next = Self.safeNext(request.uri.queryParameters.get("next"))
        return try pages.render(
            "login",
            ["frame": Frame(title: text("login.title", context), context: AppContext.anonymous(context)), "next": next]
                as [String: Any])
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
                    "frame": Frame(title: text("login.title", context), context: AppContext.anonymous(context)),
                    "error": Self.signInError(problem, pages: pages, context: context),
                    "username": username, "next": next,
                ] as [String: Any], status: problem.status)
            if let retry = problem.retryAfter { response.headers[.retryAfter] = String(retry) }
            return response
        }
    }

    /// Why a sign-in failed, for the person at the form: the catalogue's words, and how long to
    /// wait when the throttle said so.
    static func signInError(_ problem: Problem, pages: Pages, context: AppContext) -> String {
        let title = pages.title(of: problem, context.language)
        if let retry = problem.retryAfter {
            return title + " " + pages.catalogue.text("login.retryAfter", context.language, ["seconds": String(retry)])
        }
        if context.language == .en { return problem.detail.map { title + ". " + $0 } ?? title }
        return title
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
        let tokens = try await store.tokens(accountId: caller.accountId).map {
            TokenRow(
                id: $0.id, name: $0.name,
                created: Self.time($0.createdAt),
                revoked: $0.revokedAt != nil)
        }
        return try pages.render(
            "account",
            [
                "frame": Frame(title: text("account.title", context), context: context),
                "roles": caller.bindings.map { label("role", $0.role.rawValue, context) }, "tokens": tokens,
                "liveTokens": tokens.filter { !$0.revoked }, "hasLiveTokens": tokens.contains { !$0.revoked },
                "message": message as Any, "error": error as Any, "newToken": newToken as Any,
                // A resident's account page is the portal's: no API tokens, the portal's menu.
                "portal": caller.isResidentOnly,
            ] as [String: Any], status: status)
    }

    /// `/console/account` for staff, `/app/account` for residents: each is sent to their own.
    @Sendable func account(_ request: Request, context: AppContext) async throws -> Response {
        let resident = try context.requireCaller().isResidentOnly
        if resident != request.uri.path.hasPrefix("/app/") {
            return .redirect(to: resident ? "/app/account" : "/console/account")
        }
        return try await accountPage(context)
    }

    @Sendable func changePassword(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let caller = try context.requireCaller()
        let form = try await request.formFields(context: context)
        guard let account = try await store.account(id: caller.accountId),
            try await Passwords.verify(form["current"] ?? "", hash: account.passwordHash)
        else {
            return try await accountPage(
                context, error: text("account.wrongPassword", context), status: .unprocessableContent)
        }
        do { try Passwords.validate(form["new"] ?? "", field: "new") } catch {
            let key = (form["new"] ?? "").count < 10 ? "account.passwordShort" : "account.passwordLong"
            return try await accountPage(context, error: text(key, context), status: .unprocessableContent)
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
            return try await accountPage(
                context, error: text("account.tokenNameMissing", context), status: .unprocessableContent)
        }
        let (token, _) = try await store.createToken(accountId: caller.accountId, name: name, actor: context.principal)
        return try await accountPage(context, message: text("account.tokenCreatedMessage", context), newToken: token)
    }

    @Sendable func revokeToken(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        try await store.revokeToken(
            id: try context.parameters.require("id"), accountId: caller.accountId, actor: context.principal)
        services.callers.clear()
        return .redirect(to: "/console/account", type: .found)
    }

}
