import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliStorage
import LinliThings
import Logging
import ServiceLifecycle
import Synchronization

/// What every capability's route holders (its `API` for JSON under /api/v1, its `WebConsole` for
/// pages) have at hand: the application's services, the store and the pages.
public protocol ModuleRoutes: Sendable {
    var services: AppServices { get }
}

extension ModuleRoutes {
    package var store: Store { services.store }
    package var pages: Pages { services.pages }
    /// A text of the catalogue in the caller's language (`{name}` in it replaced by `values[name]`).
    package func text(_ key: String, _ context: AppContext, _ values: [String: String] = [:]) -> String {
        services.pages.catalogue.text(key, context.language, values)
    }
    /// The label of a code (`occupancy`, `ownerOccupied`) in the caller's language.
    package func label(_ prefix: String, _ code: String, _ context: AppContext) -> String {
        services.pages.catalogue.label(prefix, code, context.language)
    }
    /// Where uploaded files (work-order photos, firmware) are kept: `attachments` in the data folder.
    package var uploads: String {
        URL(fileURLWithPath: services.configuration.dataDirectory).appendingPathComponent("attachments").path
    }

    /// A time as the community reads it: Beijing time, to the second; a dash when there is none.
    package static func time(_ millis: Millis?) -> String {
        guard let millis else { return "—" }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        formatter.timeZone = TimeZone(identifier: "Asia/Shanghai")
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    /// Only same-site paths: an open redirect would help phishing.
    package static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"), next.count < 300 else {
            return ""
        }
        return next
    }

    package static func pager(_ request: Request, total: Int, page: PageRequest) -> Pager {
        func link(_ offset: Int) -> String {
            var items = (URLComponents(string: request.uri.description)?.queryItems ?? []).filter {
                $0.name != "offset"
            }
            items.append(URLQueryItem(name: "offset", value: String(offset)))
            var c = URLComponents()
            c.path = request.uri.path
            c.queryItems = items
            return c.string ?? request.uri.path
        }
        let last = min(total, page.offset + page.limit)
        return Pager(
            previous: page.offset > 0 ? link(max(0, page.offset - page.limit)) : nil,
            next: last < total ? link(page.offset + page.limit) : nil,
            label: total == 0 ? "" : "\(page.offset + 1)–\(last) / \(total)")
    }
}

/// A choice in a form's select, and the links of a paged list.
package struct SelectOption {
    package var value: String
    package var label: String
    package var selected: Bool

    package init(value: String, label: String, selected: Bool) {
        self.value = value
        self.label = label
        self.selected = selected
    }
}
package struct Pager {
    package var previous: String?
    package var next: String?
    package var label: String

    package init(previous: String?, next: String?, label: String) {
        self.previous = previous
        self.next = next
        self.label = label
    }
}

/// Live views as Server-Sent Events. Each wakes on local commits, polls for other nodes', sends a
/// comment now and then to find clients that went away, and ends when the server shuts down
/// gracefully, so it never holds shutdown up.
package enum EventStream {
    /// The event log from `after`: each event `pick` returns goes out as `event: name` / `data: …`
    /// with its sequence number as the id.
    package static func response(
        store: Store, scope: Scope, after start: Int64,
        pick: @escaping @Sendable (DomainEvent) -> (name: String, data: String)?
    ) -> Response {
        let cursor = Mutex(start)
        return live(store: store) {
            let from = cursor.withLock { $0 }
            let batch = try await store.read { db in try await EventLog.read(db, after: from, limit: 200, scope: scope)
            }
            if let last = batch.last { cursor.withLock { $0 = last.seq } }
            let text = batch.compactMap { event in
                pick(event).map { "id: \(event.seq)\nevent: \($0.name)\ndata: \($0.data)\n\n" }
            }
            return (text, batch.count == 200)
        }
    }

    /// The loop every live view shares: `next` says what is new, as SSE text, and whether more is
    /// waiting at once; otherwise the stream waits for the next commit, or 5 s and a keep-alive.
    package static func live(store: Store, next: @escaping @Sendable () async throws -> (text: [String], more: Bool))
        -> Response
    {
        Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: .init { writer in
                try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
                let stopping = StopFlag()
                try await withGracefulShutdownHandler {
                    while !stopping.isSet, !Task.isCancelled {
                        // Noted before reading, so a commit between the read and the wait is not missed.
                        let seen = await store.signal.generation
                        let (text, more) = try await next()
                        for chunk in text { try await writer.write(ByteBuffer(string: chunk)) }
                        if !more, !stopping.isSet {
                            await store.signal.wait(since: seen, timeout: .seconds(5))
                            if text.isEmpty { try await writer.write(ByteBuffer(string: ": keep-alive\n\n")) }
                        }
                    }
                } onGracefulShutdown: {
                    stopping.set()
                    Task { await store.signal.notify() }
                }
                try await writer.finish(nil)
            }
        )
    }
}

extension Scope {
    package func union(_ other: Scope) -> Scope {
        var s = self
        s.everything = everything || other.everything
        s.communities.formUnion(other.communities)
        s.buildings.formUnion(other.buildings)
        s.households.formUnion(other.households)
        s.organisations.formUnion(other.organisations)
        return s
    }
}

/// Set once, read from anywhere: tells a long-lived stream to end.
package final class StopFlag: Sendable {
    private let flag = Mutex(false)
    package var isSet: Bool { flag.withLock { $0 } }
    package func set() { flag.withLock { $0 = true } }
}

extension AppContext {
    /// The login page renders for everyone, signed in or not, with no user in the frame.
    package static func anonymous(_ context: AppContext) -> AppContext {
        var c = context
        c.caller = nil
        c.session = nil
        return c
    }
}

extension Optional {
    package func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
