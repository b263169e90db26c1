import HTTPTypes
// The router's own trie (`RouterPathTrieBuilder`, `RouterTrie`), so that a path is matched here
// exactly as the router matches it: parameters, wildcards and the order between them.
@_spi(Internal) import Hummingbird

/// The methods each registered path takes, looked up the way the router looks up its routes.
package struct RouteMethods: Sendable {
    package struct Entry: Sendable {
        /// The route's pattern (`/api/v1/households/{id}`).
        package var pattern: String
        /// In the order GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, then any other by name.
        package var methods: [HTTPRequest.Method]
    }

    private let trie: RouterTrie<Entry>

    package init(_ routes: [(path: RouterPath, method: HTTPRequest.Method)]) {
        var byPattern: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in routes {
            byPattern[route.path.description, default: (route.path, [])].methods.insert(route.method)
        }
        let builder = RouterPathTrieBuilder<Entry>()
        for (pattern, route) in byPattern {
            builder.addEntry(
                route.path, value: Entry(pattern: pattern, methods: route.methods.sorted(by: Self.precedes)))
        }
        trie = builder.build()
    }

    /// `headForGet`: the router answers HEAD wherever it answers GET (`autoGenerateHeadEndpoints`,
    /// whose HEAD routes are made when the responder is built, after this table).
    package init<Context>(_ router: Router<Context>, headForGet: Bool = false) {
        var routes = router.routes.map { (path: $0.path, method: $0.method) }
        if headForGet {
            let gets = routes.filter { $0.method == .get }
            let heads = Set(routes.filter { $0.method == .head }.map(\.path.description))
            routes += gets.filter { !heads.contains($0.path.description) }.map { ($0.path, .head) }
        }
        self.init(routes)
    }

    /// The route a request path resolves to, under whatever method; nil when no route has it.
    package func resolve(_ path: String) -> Entry? { trie.resolve(path)?.value }

    package static let order: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]

    package static func precedes(_ a: HTTPRequest.Method, _ b: HTTPRequest.Method) -> Bool {
        switch (order.firstIndex(of: a), order.firstIndex(of: b)) {
        case let (x?, y?): return x < y
        case (.some, nil): return true
        case (nil, .some): return false
        case (nil, nil): return a.rawValue < b.rawValue
        }
    }
}

/// Turns the router's 404 for a path that exists under other methods into 405 with `Allow`
/// (RFC 9110 §15.5.6), as a problem like every other error. `buildRouter` adds it after the last
/// route: Hummingbird applies a middleware only to routes added after it, so this one wraps the
/// not-found responder alone and costs nothing on a request that found its route.
package struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    package let routes: RouteMethods
    package init(routes: RouteMethods) { self.routes = routes }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let route = routes.resolve(request.uri.path), !route.methods.isEmpty,
                !route.methods.contains(request.method)
            else { throw error }
            // Metrics name the route rather than "NotFound".
            context.coreContext.endpointPath.value = route.pattern
            throw Problem.methodNotAllowed(request.method, path: route.pattern, allowed: route.methods)
        }
    }
}
