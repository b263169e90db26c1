/// One connection's QoS 1 messages awaiting PUBACK: packet id → the time it was sent. At most
/// `limit` at once, so a slow server makes the generator send less instead of queueing without
/// bound. Ids are taken in sequence (1…65535, never 0) and live in a ring indexed by the id's low
/// bits; an id whose slot is still taken by an unacknowledged older message is not handed out
/// (PUBACKs may come out of order), which also rules out reusing an id still in flight.
struct InflightWindow {
    let limit: Int
    private let mask: Int
    private var ids: [UInt16]
    private var sentAt: [UInt64]
    private(set) var count = 0
    private var lastId: UInt16 = 0

    init(limit: Int) {
        precondition(limit >= 1 && limit <= 16_384)
        self.limit = limit
        var size = 1
        while size < limit { size <<= 1 }
        mask = size - 1
        ids = Array(repeating: 0, count: size)
        sentAt = Array(repeating: 0, count: size)
    }

    /// Whether another message may be sent (unless its id's slot is still taken, which is rare).
    var hasRoom: Bool { count < limit }

    /// Takes the next packet id for a message sent at `now`; nil when the window is full.
    mutating func reserve(sentAt now: UInt64) -> UInt16? {
        guard count < limit else { return nil }
        let id: UInt16 = lastId == UInt16.max ? 1 : lastId + 1
        let slot = Int(id) & mask
        guard ids[slot] == 0 else { return nil }
        lastId = id
        ids[slot] = id
        sentAt[slot] = now
        count += 1
        return id
    }

    /// Releases `id` and returns when it was sent; nil for an id that is not in flight.
    mutating func acknowledge(_ id: UInt16) -> UInt64? {
        let slot = Int(id) & mask
        guard id != 0, ids[slot] == id else { return nil }
        ids[slot] = 0
        count -= 1
        return sentAt[slot]
    }
}
