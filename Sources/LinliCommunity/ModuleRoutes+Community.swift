import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliHTTP
import LinliStorage
import Logging
import Synchronization

extension ModuleRoutes {

    /// The community named in the path, if the caller may see it at all (else 404), with the
    /// caller's scope for `capability` (403 when the caller has none).
    package func community(
        _ context: AppContext, _ capability: Capability = .viewCommunity, name: String = "cid"
    ) async throws -> (
        Community, Scope
    ) {
        let caller = try context.requireCaller()
        let id = try context.parameters.require(name)
        let reach = caller.scope(for: .viewCommunity).union(caller.scope(for: capability))
        guard reach.everything || reach.communities.contains(id) || caller.communityIds.contains(id),
            let community = try await services.communities.community(id, store: store)
        else { throw Problem.notFound("community") }
        let scope = try context.scope(capability)
        return (community, scope)
    }

    /// For writes to a whole community: the caller's scope must cover it.
    package func requireCovers(_ scope: Scope, _ communityId: ID, _ capability: Capability) throws {
        if !scope.coversCommunity(communityId) { throw Problem.forbidden(capability) }
    }

}

extension AppServices {
    /// Communities by id, for the few seconds every request may reuse them.
    package var communities: CommunityDirectory { attachments.shared { CommunityDirectory() } }
}
