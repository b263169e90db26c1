import LinliCore
import LinliStorage
import Synchronization

/// Community rows by id, kept for half a minute: almost every request names its community, and
/// communities change rarely (and only by name or address, never by id or tenancy).
package final class CommunityDirectory: Sendable {
    package init() {}

    private let entries = Mutex<[ID: (community: Community, until: ContinuousClock.Instant)]>([:])

    package func community(_ id: ID, store: Store) async throws -> Community? {
        let now = ContinuousClock.now
        if let hit = entries.withLock({ $0[id] }), hit.until > now { return hit.community }
        guard let found = try? await store.community(id, scope: .everything, memberships: []) else { return nil }
        entries.withLock { map in
            if map.count > 10_000 { map.removeAll() }
            map[id] = (found, now + .seconds(30))
        }
        return found
    }
}
