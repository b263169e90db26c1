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
        if levelCount(filter) > limits.maxTopicLevels { throw .invalidTopic("more than \(limits.maxTopicLevels) levels") }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (i, level) in levels.enumerated() {
            if level.contains("#"), level != "#" || i != levels.count - 1 {
                throw .invalidTopic("# must be a whole level, and the last")
            }
            if level.contains("+"), level != "+" { throw .invalidTopic("+ must be a whole level") }
        }
    }

    static func levelCount(_ text: String) -> Int {
        text.utf8.reduce(1) { $1 == UInt8(ascii: "/") ? $0 + 1 : $0 }
    }

    /// Whether `filter` matches `name`. Wildcards at the first level do not match topics starting
    /// with `$` (MQTT-4.7.2-1): `#` does not receive `$SYS/...`.
    public static func matches(filter: String, name: String) -> Bool {
        if name.hasPrefix("$"), filter.hasPrefix("+") || filter.hasPrefix("#") { return false }
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
}
