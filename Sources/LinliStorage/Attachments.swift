import Synchronization

/// Objects a module keeps beside a kernel value (a store, the HTTP services) without the kernel
/// knowing their types, as Vapor keeps its `Application.storage`: at most one per type, made on
/// first use or set once by the assembly, and shared by every copy of the value that holds them.
public final class Attachments: Sendable {
    private let objects = Mutex<[ObjectIdentifier: any Sendable]>([:])

    public init() {}

    /// The one of this type, made by `make` the first time it is asked for.
    public func shared<T: Sendable>(_ type: T.Type = T.self, _ make: () -> T) -> T {
        objects.withLock { map in
            if let found = map[ObjectIdentifier(type)] as? T { return found }
            let made = make()
            map[ObjectIdentifier(type)] = made
            return made
        }
    }

    /// The one of this type, if it was set.
    public func get<T: Sendable>(_ type: T.Type = T.self) -> T? {
        objects.withLock { $0[ObjectIdentifier(type)] as? T }
    }

    public func set<T: Sendable>(_ value: T) {
        objects.withLock { $0[ObjectIdentifier(T.self)] = value }
    }
}
