import LinliMQTT

/// The topics an Alink device may use, kept as its product key and name and checked against
/// templates shared by every device. A device holds its policy as long as it is connected: written
/// out, its fifteen topic patterns took about 1 KiB a connection (11 MiB for 10,000 devices);
/// these two names take what the device's own names take.
public struct AlinkTopicPolicy: MQTTClientPolicy, Equatable {
    public let productKey: String
    public let deviceName: String

    public init(productKey: String, deviceName: String) {
        self.productKey = productKey
        self.deviceName = deviceName
    }

    /// What a device may publish, `{pk}` and `{dn}` its own names:
    /// - its system and custom topics, which a gateway also uses for the sub-devices it serves;
    /// - firmware: its version on inform and how far an upgrade got;
    /// - a gateway's sub-device sessions (refused unless its product is a gateway);
    /// - the time service, its shadow document, and answers to its sync services over RRPC.
    public static let publishPatterns = [
        "/sys/{pk}/{dn}/#", "/{pk}/{dn}/user/#",
        "/ota/device/inform/{pk}/{dn}", "/ota/device/progress/{pk}/{dn}",
        "/ext/session/{pk}/{dn}/#", "/ext/ntp/{pk}/{dn}/request", "/shadow/update/{pk}/{dn}",
        "/ext/rrpc/+/sys/{pk}/{dn}/thing/service/+",
    ]
    /// What it may subscribe to: its own topics, its firmware offers, session replies, the time,
    /// its shadow's answers and its RRPC calls.
    public static let subscribePatterns = [
        "/sys/{pk}/{dn}/#", "/{pk}/{dn}/user/#",
        "/ota/device/upgrade/{pk}/{dn}",
        "/ext/session/{pk}/{dn}/#", "/ext/ntp/{pk}/{dn}/response", "/shadow/get/{pk}/{dn}",
        "/ext/rrpc/+/sys/{pk}/{dn}/#",
    ]

    /// The same rules as patterns written out for one device: what this policy must agree with.
    public var written: TopicPolicy {
        func fill(_ pattern: String) -> String {
            pattern.replacingOccurrences(of: "{pk}", with: productKey).replacingOccurrences(
                of: "{dn}", with: deviceName)
        }
        return TopicPolicy(publish: Self.publishPatterns.map(fill), subscribe: Self.subscribePatterns.map(fill))
    }

    /// The device a topic or filter is about, among those a gateway uses for its sub-devices:
    /// `/sys/{pk}/{dn}/…`, `/{pk}/{dn}/user/…`, `/ext/rrpc/{id}/sys/{pk}/{dn}/…` and
    /// `/ota/device/{…}/{pk}/{dn}`, the names written out, not wildcards; nil for any other topic.
    /// What may be done there is the device's own policy's to say.
    public static func device(in topic: String) -> (productKey: String, deviceName: String)? {
        if let named = AlinkRRPC.device(in: topic) { return named }
        let parts = topic.split(separator: "/", maxSplits: 6, omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].isEmpty else { return nil }
        let (pk, dn): (Substring, Substring)
        if parts[1] == "sys" {
            (pk, dn) = (parts[2], parts[3])
        } else if parts.count == 6, parts[1] == "ota", parts[2] == "device" {
            (pk, dn) = (parts[4], parts[5])
        } else if parts[3] == "user" {
            (pk, dn) = (parts[1], parts[2])
        } else {
            return nil
        }
        guard !pk.isEmpty, !dn.isEmpty, !(pk + dn).contains(where: { $0 == "+" || $0 == "#" }) else { return nil }
        return (String(pk), String(dn))
    }

    enum Level: Equatable {
        case literal([UInt8]), productKey, deviceName, one, rest
    }

    static func template(_ pattern: String) -> [Level] {
        pattern.split(separator: "/", omittingEmptySubsequences: false).map { level in
            switch level {
            case "{pk}": .productKey
            case "{dn}": .deviceName
            case "+": .one
            case "#": .rest
            default: .literal(Array(level.utf8))
            }
        }
    }

    static let publishTemplates = publishPatterns.map(template)
    static let subscribeTemplates = subscribePatterns.map(template)

    public func mayPublish(to topic: String) -> Bool {
        Self.check(
            topic, against: Self.publishTemplates, productKey: productKey, deviceName: deviceName, covering: false)
    }

    public func maySubscribe(to filter: String) -> Bool {
        Self.check(
            filter, against: Self.subscribeTemplates, productKey: productKey, deviceName: deviceName, covering: true)
    }

    /// Whether `text` (a topic, or with `covering` a filter) fits one of the templates. A topic
    /// fits as `Topic.matches` has it; a filter fits when every topic it can match does, as
    /// `Topic.covers` has it: its wildcards only where the template has wildcards too.
    static func check(
        _ text: String, against templates: [[Level]], productKey: String, deviceName: String, covering: Bool
    ) -> Bool {
        var text = text
        var pk = productKey
        var dn = deviceName
        text.makeContiguousUTF8()
        pk.makeContiguousUTF8()
        dn.makeContiguousUTF8()
        return text.utf8.withContiguousStorageIfAvailable { t in
            pk.utf8.withContiguousStorageIfAvailable { p in
                dn.utf8.withContiguousStorageIfAvailable { d in
                    templates.contains { fits(t, $0, pk: p, dn: d, covering: covering) }
                }
            }
        }.flatMap { $0 }.flatMap { $0 } ?? false
    }

    static func fits(
        _ t: UnsafeBufferPointer<UInt8>, _ template: [Level], pk: UnsafeBufferPointer<UInt8>,
        dn: UnsafeBufferPointer<UInt8>, covering: Bool
    ) -> Bool {
        let slash = UInt8(ascii: "/")
        var start = 0
        for level in template {
            if level == .rest { return true }  // also the parent level: "a/#" takes "a"
            guard start <= t.count else { return false }
            var end = start
            while end < t.count, t[end] != slash { end += 1 }
            let part = UnsafeBufferPointer(rebasing: t[start..<end])
            let isWildcard = part.count == 1 && (part[0] == UInt8(ascii: "+") || part[0] == UInt8(ascii: "#"))
            switch level {
            case .one:
                // A filter's `#` here would reach past what the template allows.
                if covering, part.count == 1, part[0] == UInt8(ascii: "#") { return false }
            case let .literal(bytes):
                if covering, isWildcard { return false }
                guard part.elementsEqual(bytes) else { return false }
            case .productKey:
                if covering, isWildcard { return false }
                guard part.elementsEqual(pk) else { return false }
            case .deviceName:
                if covering, isWildcard { return false }
                guard part.elementsEqual(dn) else { return false }
            case .rest:
                return true
            }
            start = end + 1
        }
        return start == t.count + 1
    }
}
