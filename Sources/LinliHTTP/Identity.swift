import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import LinliCore
import LinliStorage
import Logging
import NIOPosix
import Synchronization

/// Password hashing with bcrypt, off the event loops (it is deliberately slow).
public enum Passwords {
    /// Cost 10 is the floor the project accepts; raise it when hardware allows.
    public static let cost: UInt8 = 10

    public static func hash(_ password: String) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    public static func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }

    /// Hashes on the calling thread; for tools and tests, not for request handlers.
    public static func hashBlocking(_ password: String) -> String { Bcrypt.hash(password, cost: cost) }

    /// Verified against when the account does not exist, so timing does not reveal usernames.
    package static let decoy = Bcrypt.hash("decoy password that matches nothing", cost: cost)

    public static func validate(_ password: String, field: String = "password") throws(ValidationFailure) {
        if password.count < 10 { throw ValidationFailure(field, "must be at least 10 characters") }
        if password.count > 72 { throw ValidationFailure(field, "must be at most 72 characters (bcrypt's limit)") }
    }

    /// A readable random password for generated accounts.
    public static func generate() -> String {
        let alphabet = Array("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var g = SystemRandomNumberGenerator()
        return String((0..<16).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &g)] })
    }
}

/// Resolves the caller from a session cookie or a bearer token, and enforces CSRF on
/// cookie-authenticated writes. Requests without credentials go on as anonymous; handlers deny.
package struct IdentityMiddleware: RouterMiddleware {
    package typealias Context = AppContext
    package let store: Store
    package let callers: CallerCache
    /// Where a multipart form's files are streamed while its CSRF token is checked.
    package let uploads: String
    package init(store: Store, callers: CallerCache, uploads: String) {
        self.store = store
        self.callers = callers
        self.uploads = uploads
    }
    package static let cookieName = "linli_session"
    /// The language chosen in a browser (the header's switch), for pages before signing in.
    package static let languageCookieName = "linli_lang"

    /// The account's choice, else this browser's, else its `Accept-Language`, else Chinese.
    package static func language(_ request: Request, caller: Caller?) -> Language {
        if let chosen = caller?.language { return chosen }
        if let cookie = request.cookies[languageCookieName]?.value, let chosen = Language(rawValue: cookie) {
            return chosen
        }
        return Language.negotiate(request.headers[.acceptLanguage])
    }

    package func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        var context = context
        var request = request
        if let header = request.headers[.authorization] {
            // A bad token is remembered, not thrown: public endpoints still answer, protected ones say why.
            if header.lowercased().hasPrefix("bearer "),
                case let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces), !token.isEmpty
            {
                let key = "t:" + Digest.sha256Hex(token)
                if let cached = callers.get(key) {
                    context.caller = cached.caller
                } else if let account = try await store.account(token: token), account.status == .active {
                    let caller = try await Self.caller(for: account, store: store)
                    callers.put(key, CallerCache.Entry(caller: caller, session: nil))
                    context.caller = caller
                } else {
                    context.rejectedToken = true
                }
            } else {
                context.rejectedToken = true
            }
        } else if let cookie = request.cookies[Self.cookieName]?.value, !cookie.isEmpty {
            let key = "s:" + Digest.sha256Hex(cookie)
            var entry = callers.get(key)
            if entry == nil, let session = try await store.session(cookie: cookie),
                let account = try await store.account(id: session.accountId), account.status == .active
            {
                entry = CallerCache.Entry(caller: try await Self.caller(for: account, store: store), session: session)
                callers.put(key, entry!)
            }
            if let entry, let session = entry.session, session.expiresAt > nowMillis() {
                context.caller = entry.caller
                context.session = session
                // Signing in again from a browser that still holds a session needs no token.
                let signIn = request.uri.path == "/login" || request.uri.path == "/api/v1/session"
                if ![.get, .head, .options].contains(request.method), !signIn {
                    try await Self.checkCSRF(&request, session: session, context: &context, uploads: uploads)
                }
            }
        }
        if let caller = context.caller {
            context.logger[metadataKey: "account"] = "\(caller.username)"
        }
        context.language = Self.language(request, caller: context.caller)
        context.target = request.uri.description
        do {
            return try await next(request, context)
        } catch {
            // The error page is drawn outside, by ProblemMiddleware: it needs who asked and in
            // which language, which only this context knows.
            throw ErrorInContext(error: error, context: context)
        }
    }

    package static func caller(for account: Account, store: Store) async throws -> Caller {
        let bindings = try await store.bindings(accountId: account.id)
        let grids = try await store.gridBuildings(bindings.compactMap(\.gridId))
        return Caller(
            accountId: account.id, username: account.username, displayName: account.displayName, bindings: bindings,
            gridBuildings: grids, language: account.language)
    }

    /// A cookie-authenticated write must prove it came from Linli's own page: the session's token in
    /// the X-CSRF-Token header (scripts) or the `_csrf` form field (forms).
    package static func checkCSRF(
        _ request: inout Request, session: WebSession, context: inout AppContext, uploads: String
    ) async throws {
        let expired = Problem(
            .forbidden, type: "csrf", title: "The form has expired",
            detail: "Reload the page and try again (missing or wrong CSRF token).")
        if let header = request.headers[HTTPField.Name("X-CSRF-Token")!] {
            if Digest.constantTimeEqual(header, session.csrfToken) { return }
        } else if request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true {
            let fields = try await request.formFields(context: context)
            if let token = fields["_csrf"], Digest.constantTimeEqual(token, session.csrfToken) { return }
        } else if Multipart.boundary(request.headers[.contentType]) != nil {
            // A form with a file (a photo with a report) carries the token as one of its parts:
            // checked before the first file is written, and the form kept for the handler.
            context.multipartForm = try await request.multipart(context: context, folder: uploads) { form in
                guard let token = form.fields["_csrf"], Digest.constantTimeEqual(token, session.csrfToken) else {
                    throw expired
                }
            }
            return
        }
        throw expired
    }
}

/// Signed-in callers, remembered for a few seconds so a busy client does not cost three queries per
/// request. Anything that changes who may do what (sign-out, token revocation, role and password
/// changes) clears it at once in this process; other processes see the change within `lifetime`.
package final class CallerCache: Sendable {
    package struct Entry: Sendable {
        package var caller: Caller
        package var session: WebSession?
    }

    private let entries = Mutex<[String: (entry: Entry, until: ContinuousClock.Instant)]>([:])
    package let lifetime: Duration

    package init(lifetime: Duration = .seconds(5)) { self.lifetime = lifetime }

    package func get(_ key: String) -> Entry? {
        let now = ContinuousClock.now
        return entries.withLock { map in
            guard let hit = map[key] else { return nil }
            if hit.until < now {
                map[key] = nil
                return nil
            }
            return hit.entry
        }
    }

    package func put(_ key: String, _ entry: Entry) {
        let until = ContinuousClock.now + lifetime
        entries.withLock { map in
            if map.count > 10_000 { map.removeAll() }
            map[key] = (entry, until)
        }
    }

    package func clear() { entries.withLock { $0.removeAll() } }
}
