/// Every session's subscriptions, by topic level, so that routing a message costs the levels of its
/// topic and the subscriptions that match — not a look at every session. Lives inside
/// `BrokerState`, which alone touches it.
struct SubscriptionTree {
    final class Node {
        var children: [Substring: Node] = [:]
        /// The `+` level below this one.
        var plus: Node?
        /// Filters ending in `#` here: they match this level and everything under it.
        var rest: [String: Subscription] = [:]
        /// Filters ending exactly here.
        var here: [String: Subscription] = [:]

        var isEmpty: Bool { children.isEmpty && plus == nil && rest.isEmpty && here.isEmpty }
    }

    private let root = Node()
    /// (client, filter) pairs held.
    private(set) var count = 0

    /// What a message gets from all of one client's subscriptions that match it (MQTT 5 §3.3.4:
    /// one copy, at the highest QoS granted, with every matching subscription's identifier).
    struct Match {
        var qos: QoS
        var identifiers: [Int] = []
        /// Some matching subscription keeps the retain flag as published.
        var retainAsPublished = false

        mutating func add(_ s: Subscription) {
            qos = max(qos, s.qos)
            if let id = s.identifier { identifiers.append(id) }
            if s.retainAsPublished { retainAsPublished = true }
        }
    }

    /// `filter` is where the subscription sits (a shared one's inner filter); `subscription` is
    /// what it asked for.
    mutating func insert(_ filter: String, clientId: String, _ subscription: Subscription) {
        var node = root
        for level in filter.split(separator: "/", omittingEmptySubsequences: false) {
            if level == "#" {
                if node.rest.updateValue(subscription, forKey: clientId) == nil { count += 1 }
                return
            }
            if level == "+" {
                if node.plus == nil { node.plus = Node() }
                node = node.plus!
            } else if let child = node.children[level] {
                node = child
            } else {
                let child = Node()
                node.children[level] = child
                node = child
            }
        }
        if node.here.updateValue(subscription, forKey: clientId) == nil { count += 1 }
    }

    mutating func remove(_ filter: String, clientId: String) {
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        if Self.remove(levels[...], clientId: clientId, from: root) { count -= 1 }
    }

    /// Removes the pair under `node`, pruning nodes left empty; true when it was there.
    private static func remove(_ levels: ArraySlice<Substring>, clientId: String, from node: Node) -> Bool {
        guard let level = levels.first else { return node.here.removeValue(forKey: clientId) != nil }
        if level == "#" { return node.rest.removeValue(forKey: clientId) != nil }
        let rest = levels.dropFirst()
        if level == "+" {
            guard let plus = node.plus else { return false }
            let removed = remove(rest, clientId: clientId, from: plus)
            if plus.isEmpty { node.plus = nil }
            return removed
        }
        guard let child = node.children[level] else { return false }
        let removed = remove(rest, clientId: clientId, from: child)
        if child.isEmpty { node.children[level] = nil }
        return removed
    }

    /// The clients with a subscription matching `topic`, each with what its matching
    /// subscriptions ask for together. A subscription with No Local does not match a message its
    /// own client (`from`) published. Wildcards at the first level do not match topics that begin
    /// with `$` (MQTT-4.7.2-1).
    func matches(_ topic: String, from publisher: String? = nil) -> [String: Match] {
        var found: [String: Match] = [:]
        guard count > 0 else { return found }
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        let dollar = topic.hasPrefix("$")
        func add(_ subscribers: [String: Subscription]) {
            for (client, s) in subscribers {
                if s.noLocal, client == publisher { continue }
                if found[client] != nil {
                    found[client]!.add(s)
                } else {
                    var match = Match(qos: s.qos)
                    match.add(s)
                    found[client] = match
                }
            }
        }
        func walk(_ node: Node, _ depth: Int) {
            let wildcardsAllowed = !(depth == 0 && dollar)
            if wildcardsAllowed, !node.rest.isEmpty { add(node.rest) }
            if depth == levels.count {
                add(node.here)
                return
            }
            if let child = node.children[levels[depth]] { walk(child, depth + 1) }
            if wildcardsAllowed, let plus = node.plus { walk(plus, depth + 1) }
        }
        walk(root, 0)
        return found
    }
}
