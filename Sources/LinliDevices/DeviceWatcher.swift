import LinliCore
import LinliDeviceRegistry

/// What a device did, as its watchers (the rules) are told: the numbers of a post, an event, a
/// change of status. The devices module knows nothing of who watches or why.
public enum DeviceActivity: Sendable, Equatable {
    /// Numeric property values of one post (text and structures are not compared).
    case properties([String: Double])
    case event(String)
    /// "online" or "offline".
    case status(String)
}

/// Told of what devices do as soon as the gateway understands it, before it is committed.
public protocol DeviceWatcher: Sendable {
    /// Whether anything is watched at all; when not, posts need not be shown.
    var watchesDevices: Bool { get }
    func observe(_ activity: DeviceActivity, from device: Device, at now: Millis)
}

extension DeviceWatcher {
    func observe(_ activity: DeviceActivity, from device: Device) { observe(activity, from: device, at: nowMillis()) }
}
