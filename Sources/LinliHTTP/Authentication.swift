import Foundation
import Hummingbird
import LinliCore
import LinliStorage
import Logging

/// Signing in, shared by the API and the login page: throttled, timing-equalised, audited.
package struct Authentication {
    package let services: AppServices
    package init(services: AppServices) { self.services = services }

    package func signIn(username rawUsername: String, password: String, remote: String?, logger: Logger) async throws
        -> (
            cookie: String, session: WebSession, account: Account
        )
    {
        let username = rawUsername.trimmingCharacters(in: .whitespaces).lowercased()
        if username.isEmpty || username.count > 64 {
            throw Problem.invalid([FieldIssue("username", "must be 1 to 64 characters")])
        }
        if password.isEmpty || password.count > 200 {
            throw Problem.invalid([FieldIssue("password", "must be 1 to 200 characters")])
        }
        let keys = ["user:" + username] + (remote.map { ["addr:" + $0] } ?? [])
        if let wait = await services.throttle.retryAfter(keys) {
            logger.notice("sign-in throttled", metadata: ["username": "\(username)", "remote": "\(remote ?? "-")"])
            throw Problem(
                .tooManyRequests, type: "throttled", title: "Too many failed sign-ins",
                detail: "Try again in \(wait) seconds.", retryAfter: wait)
        }
        let account = try await services.store.account(username: username)
        let ok = try await Passwords.verify(password, hash: account?.passwordHash ?? Passwords.decoy)
        guard let account, ok, account.status == .active else {
            await services.throttle.failed(keys)
            try await services.store.write { db in
                try await AuditLog.record(
                    db, actor: Principal(accountId: account?.id, name: username, remote: remote),
                    action: "session.failed", subjectType: "account", subjectId: account?.id ?? "-", communityId: nil)
            }
            throw Problem(.unauthorized, type: "bad-credentials", title: "Wrong username or password")
        }
        await services.throttle.succeeded("user:" + username)
        let (cookie, session) = try await services.store.createSession(
            accountId: account.id, lifetime: .seconds(services.configuration.sessionHours * 3600))
        try await services.store.write { db in
            try await AuditLog.record(
                db, actor: Principal(accountId: account.id, name: username, remote: remote), action: "session.started",
                subjectType: "account", subjectId: account.id, communityId: nil)
        }
        return (cookie, session, account)
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
