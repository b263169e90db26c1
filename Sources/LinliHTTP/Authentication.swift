import Foundation
import Hummingbird
import LinliCore
import LinliStorage
import Logging

/// Signing in, shared by the API and the login page: throttled, timing-equalised, audited.
package struct Authentication {
    package let services: AppServices
    package init(services: AppServices) { self.services = services }

    /// Signs in; `browser` is the device cookie the client sent, if any. Returns, with the
    /// session, the device cookie to set: the browser is known to this account from now on.
    package func signIn(
        username rawUsername: String, password: String, remote: String?, browser: String?, logger: Logger
    ) async throws -> (cookie: String, session: WebSession, account: Account, browser: String) {
        let username = rawUsername.trimmingCharacters(in: .whitespaces).lowercased()
        if username.isEmpty || username.count > 64 {
            throw Problem.invalid([FieldIssue("username", "must be 1 to 64 characters")])
        }
        if password.isEmpty || password.count > 200 {
            throw Problem.invalid([FieldIssue("password", "must be 1 to 200 characters")])
        }
        let known = browser.flatMap { knownBrowser($0, username: username) }
        let keys = await services.throttle.keys(via: "web", account: username, remote: remote, knownBrowser: known)
        if let wait = await services.throttle.retryAfter(keys) {
            logger.notice("sign-in throttled", metadata: ["username": "\(username)", "remote": "\(remote ?? "-")"])
            throw Problem(
                .tooManyRequests, type: "throttled", title: "Too many failed sign-ins",
                detail: "Try again in \(wait) seconds.", retryAfter: wait)
        }
        let account = try await services.store.account(username: username)
        let ok: Bool
        do {
            ok = try await PasswordChecks.shared.verify(
                password, hash: account?.passwordHash ?? Passwords.decoy, account: account.map { "web " + $0.id })
        } catch is PasswordChecks.Busy {
            throw Problem(
                .serviceUnavailable, type: "busy", title: "Too many sign-ins at once",
                detail: "Try again in a second.", retryAfter: 1)
        }
        guard let account, ok, account.status == .active else {
            await services.throttle.failed(keys)
            try await services.store.write { db in
                try await AuditLog.record(
                    db, actor: Principal(accountId: account?.id, name: username, remote: remote),
                    action: "session.failed", subjectType: "account", subjectId: account?.id ?? "-", communityId: nil)
            }
            throw Problem(.unauthorized, type: "bad-credentials", title: "Wrong username or password")
        }
        await services.throttle.succeeded(keys)
        let (cookie, session) = try await services.store.createSession(
            accountId: account.id, lifetime: .seconds(services.configuration.sessionHours * 3600))
        try await services.store.write { db in
            try await AuditLog.record(
                db, actor: Principal(accountId: account.id, name: username, remote: remote), action: "session.started",
                subjectType: "account", subjectId: account.id, communityId: nil)
        }
        let nonce = known ?? Digest.randomToken(bytes: 12)
        return (
            cookie, session, account,
            nonce + "." + services.store.cipher.tag(username + " " + nonce, purpose: Self.browserPurpose)
        )
    }

    private static let browserPurpose = "known browser"
    package static let browserCookieName = "linli_browser"

    /// The browser's own id when its device cookie was given by this server for `username`.
    package func knownBrowser(_ value: String, username: String) -> String? {
        let parts = value.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[0].count <= 32,
            Digest.constantTimeEqual(
                parts[1], services.store.cipher.tag(username + " " + parts[0], purpose: Self.browserPurpose))
        else { return nil }
        return parts[0]
    }

    /// The device cookie: kept a year, sent only to Linli, unreadable to scripts.
    package static func browserCookie(_ value: String, configuration: HTTPSettings) -> Cookie {
        Cookie(
            name: browserCookieName, value: value, maxAge: 365 * 86_400, path: "/", secure: configuration.secureCookies,
            httpOnly: true, sameSite: .lax)
    }

    package static func cookie(_ value: String, configuration: HTTPSettings) -> Cookie {
        Cookie(
            name: IdentityMiddleware.cookieName, value: value, maxAge: configuration.sessionHours * 3600, path: "/",
            secure: configuration.secureCookies, httpOnly: true, sameSite: .lax)
    }

    package static func expiredCookie() -> Cookie {
        Cookie(name: IdentityMiddleware.cookieName, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .lax)
    }
}
