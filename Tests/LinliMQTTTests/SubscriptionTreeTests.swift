import Testing

@testable import LinliMQTT

@Suite("Subscription tree")
struct SubscriptionTreeTests {
    static let filters = [
        "#", "+", "+/+", "a", "a/#", "a/+", "a/b", "a/b/c", "a/+/c", "+/b/#", "/a", "/+", "+/", "a//b", "a/+/+/#",
        "$SYS/#", "$SYS/broker", "+/broker", "sport/tennis/#", "sport/+/player1", "/sys/pk/dn/thing/service/+",
    ]
    static let topics = [
        "a", "a/b", "a/b/c", "a/x/c", "a/b/c/d", "b", "b/b", "b/b/z", "/a", "/", "a/", "a//b", "$SYS/broker", "$SYS/x",
        "sport", "sport/tennis", "sport/tennis/player1", "sport/golf/player1", "/sys/pk/dn/thing/service/property/set",
        "/sys/pk/dn/thing/service/reboot", "x/broker",
    ]

    /// Each client holds one filter; the tree must find exactly the clients `Topic.matches` finds.
    @Test func findsWhatMatchingEveryFilterFinds() {
        var tree = SubscriptionTree()
        for (i, filter) in Self.filters.enumerated() {
            tree.insert(filter, clientId: "c\(i)", Subscription(filter: filter, qos: QoS(rawValue: UInt8(i % 3))!))
        }
        #expect(tree.count == Self.filters.count)
        for topic in Self.topics {
            let expected = Set(
                Self.filters.indices.filter { Topic.matches(filter: Self.filters[$0], name: topic) }.map { "c\($0)" })
            #expect(Set(tree.matches(topic).keys) == expected, "topic \(topic)")
        }
    }

    @Test func oneClientGetsTheHighestQoSOfItsMatchingFilters() {
        var tree = SubscriptionTree()
        tree.insert("a/#", clientId: "x", Subscription(filter: "a/#", qos: .atMostOnce))
        tree.insert("a/+", clientId: "x", Subscription(filter: "a/+", qos: .exactlyOnce))
        tree.insert("a/b", clientId: "x", Subscription(filter: "a/b", qos: .atLeastOnce))
        tree.insert("a/b", clientId: "x", Subscription(filter: "a/b", qos: .atLeastOnce))  // again: replaced, not added
        #expect(tree.count == 3)
        #expect(tree.matches("a/b").mapValues(\.qos) == ["x": .exactlyOnce])
        #expect(tree.matches("a/b/c").mapValues(\.qos) == ["x": .atMostOnce])
    }

    @Test func removingPrunesAndForgets() {
        var tree = SubscriptionTree()
        for i in 0..<100 {
            tree.insert(
                "devices/\(i)/+/set", clientId: "d\(i)", Subscription(filter: "devices/\(i)/+/set", qos: .atLeastOnce))
        }
        tree.insert("devices/#", clientId: "ops", Subscription(filter: "devices/#", qos: .atMostOnce))
        #expect(tree.matches("devices/7/x/set").mapValues(\.qos) == ["d7": .atLeastOnce, "ops": .atMostOnce])
        for i in 0..<100 { tree.remove("devices/\(i)/+/set", clientId: "d\(i)") }
        tree.remove("devices/1/+/set", clientId: "d1")  // not there any more: no change
        tree.remove("devices/#", clientId: "nobody")
        #expect(tree.count == 1)
        #expect(tree.matches("devices/7/x/set").mapValues(\.qos) == ["ops": .atMostOnce])
        tree.remove("devices/#", clientId: "ops")
        #expect(tree.count == 0 && tree.matches("devices/7/x/set").isEmpty)
    }
}
