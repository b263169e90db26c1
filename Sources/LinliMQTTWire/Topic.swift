/// Topic names (where a message is published) and topic filters (what a subscriber asks for),
/// MQTT 3.1.1 §4.7.
public enum Topic {
    public static func validateName(_ name: String, limits: MQTTLimits) throws(MQTTProtocolError) {
        if name.isEmpty { throw .invalidTopic("a topic name must not be empty") }
        if name.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }) {
            throw .invalidTopic("a topic name must not contain + or #")
        }
        if levelCount(name) > limits.maxTopicLevels { throw .invalidTopic("more than \(limits.maxTopicLevels) levels") }
    }

    public static func validateFilter(_ filter: String, limits: MQTTLimits) throws(MQTTProtocolError) {
        if filter.isEmpty { throw .invalidTopic("a topic filter must not be empty") }
        if filter.hasPrefix("$share/") {
            // `$share/{name}/{filter}` (MQTT 5 §4.8.2, also taken from 3.1.1 clients): a name of at
            // least one character without `/ + #`, then a whole filter.
            guard let (_, inner) = shared(filter) else {
                throw .invalidTopic("a shared subscription is $share/{name}/{filter}, the name without + or #")
            }
            return try validateFilter(inner, limits: limits)
        }
        if levelCount(filter) > limits.maxTopicLevels {
            throw .invalidTopic("more than \(limits.maxTopicLevels) levels")
        }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (i, level) in levels.enumerated() {
            if level.contains("#"), level != "#" || i != levels.count - 1 {
                throw .invalidTopic("# must be a whole level, and the last")
            }
            if level.contains("+"), level != "+" { throw .invalidTopic("+ must be a whole level") }
        }
    }

    /// A shared subscription's group name and filter; nil for a filter that is not one.
    public static func shared(_ filter: String) -> (group: String, filter: String)? {
        guard filter.hasPrefix("$share/") else { return nil }
        let rest = filter.utf8.dropFirst(7)
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let group = String(filter[rest.startIndex..<slash])
        let inner = String(filter[filter.utf8.index(after: slash)...])
        guard !group.isEmpty, !inner.isEmpty, !inner.hasPrefix("$share/"),
            !group.contains(where: { $0 == "+" || $0 == "#" })
        else { return nil }
        return (group, inner)
    }

    static func levelCount(_ text: String) -> Int {
        text.utf8.reduce(1) { $1 == UInt8(ascii: "/") ? $0 + 1 : $0 }
    }

    /// Whether `filter` matches `name`. Wildcards at the first level do not match topics starting
    /// with `$` (MQTT-4.7.2-1): `#` does not receive `$SYS/...`.
    public static func matches(filter: String, name: String) -> Bool {
        if name.hasPrefix("$"), filter.hasPrefix("+") || filter.hasPrefix("#") { return false }
        // Every publish is checked against the client's ACL this way, so the usual (native,
        // contiguous) strings are compared level by level in place, without splitting into arrays.
        if let result = filter.utf8.withContiguousStorageIfAvailable({ f in
            name.utf8.withContiguousStorageIfAvailable { n in matches(filter: f, name: n) }
        }), let result {
            return result
        }
        var f = filter.split(separator: "/", omittingEmptySubsequences: false)[...]
        var n = name.split(separator: "/", omittingEmptySubsequences: false)[...]
        while let level = f.first {
            if level == "#" { return true }  // also matches the parent level: "a/#" matches "a"
            guard let part = n.first else { return false }
            if level != "+", level != part { return false }
            f = f.dropFirst()
            n = n.dropFirst()
        }
        return n.isEmpty
    }

    /// `matches(filter:name:)` on UTF-8 bytes. A string of k slashes has k + 1 levels (an empty
    /// string is one empty level); an index past the end means no level is left.
    static func matches(filter f: UnsafeBufferPointer<UInt8>, name n: UnsafeBufferPointer<UInt8>) -> Bool {
        let slash = UInt8(ascii: "/")
        var fi = 0
        var ni = 0
        while true {
            var fe = fi
            while fe < f.count, f[fe] != slash { fe += 1 }
            let wildcard = fe - fi == 1 ? f[fi] : 0
            if wildcard == UInt8(ascii: "#") { return true }  // also matches the parent level: "a/#" matches "a"
            if ni > n.count { return false }
            var ne = ni
            while ne < n.count, n[ne] != slash { ne += 1 }
            if wildcard != UInt8(ascii: "+") {
                guard fe - fi == ne - ni else { return false }
                var i = 0
                while i < fe - fi {
                    if f[fi + i] != n[ni + i] { return false }
                    i += 1
                }
            }
            fi = fe + 1
            ni = ne + 1
            if fi > f.count { return ni > n.count }
        }
    }
}
