import Foundation
import Hummingbird
import LinliCore
import LinliStorage

/// Per-request state: who is calling (resolved by `IdentityMiddleware`) and how.
public struct AppContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var caller: Caller?
    /// Set when the caller came with a web-session cookie (CSRF applies); nil for bearer tokens.
    public var session: WebSession?
    public var remoteAddress: String?
    /// A bearer token was sent but is unknown, revoked or its account disabled.
    public var rejectedToken = false
    /// A multipart form the CSRF check has read already (its token is one of the parts), for the
    /// handler: the body can be read only once, and its files are on disk by then.
    package var multipartForm: MultipartForm?
    /// What the caller's pages speak (`IdentityMiddleware.language`).
    public var language = Language.standard
    /// The request's path and query, for links back to the same page (the language switch).
    package var target = "/"

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }

    /// What Hummingbird itself reads at most; Linli's routes read their bodies with their own
    /// limits (`BodyLimit`), the largest of which is this.
    public var maxUploadSize: Int { BodyLimit.upload }

    public var principal: Principal {
        Principal(accountId: caller?.accountId, name: caller?.username ?? "anonymous", remote: remoteAddress)
    }

    /// The caller, or 401 for anonymous requests.
    public func requireCaller() throws -> Caller {
        guard let caller else {
            if rejectedToken {
                throw Problem(
                    .unauthorized, type: "unauthorized", title: "The token is not valid",
                    detail: "It is unknown, revoked, or its account is disabled.")
            }
            throw Problem.unauthorized()
        }
        return caller
    }

    /// The caller's reach for a capability; 403 when it has none at all.
    public func scope(_ capability: Capability) throws -> Scope {
        let caller = try requireCaller()
        let scope = caller.scope(for: capability)
        if scope.isEmpty { throw Problem.forbidden(capability) }
        return scope
    }
}
