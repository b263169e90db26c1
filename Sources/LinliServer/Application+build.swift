import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliStorage
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes
import Prometheus
import ServiceLifecycle
import Synchronization

/// Prometheus registry behind swift-metrics, bootstrapped once per process.
public enum Telemetry {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped: Bool = {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return true
    }()

    public static func bootstrap() { _ = bootstrapped }
}

/// Everything the HTTP layer needs, built once at start.
public struct AppServices: Sendable {
    public let store: Store
    public let configuration: ServerConfiguration
    public let throttle: LoginThrottle
    public let pages: Pages
    public let openAPIDocument: String
    let callers = CallerCache()
    let communities = CommunityDirectory()
    let responses = ResponseCache()

    /// The broker's side of devices, when the broker runs (`--mqtt off` leaves it nil).
    public let devices: DeviceGateway?
    /// The rules engine, told when rules change; nil where no engine runs (some tests).
    public let rules: RuleService?

    public init(
        store: Store, configuration: ServerConfiguration, logger: Logger, devices: DeviceGateway? = nil,
        rules: RuleService? = nil
    ) throws {
        self.store = store
        self.devices = devices
        self.rules = rules
        self.configuration = configuration
        throttle = LoginThrottle(logger: logger)
        pages = try Pages()
        openAPIDocument = try Resources.text("openapi.yaml")
    }
}

enum Resources {
    static func text(_ name: String) throws -> String {
        guard
            let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources")
                ?? Bundle.module.url(forResource: name, withExtension: nil)
        else {
            throw ServerConfiguration.Invalid(key: "resources", reason: "\(name) is missing from the build")
        }
        return try String(contentsOf: url, encoding: .utf8)
    }
}

/// Closes the database when the service group shuts down, after the HTTP server has drained.
public struct DatabaseService: Service {
    let store: Store
    public init(store: Store) { self.store = store }
    public func run() async throws {
        try? await gracefulShutdown()
        await store.close()
    }
}

public func buildRouter(_ services: AppServices) -> Router<AppContext> {
    Telemetry.bootstrap()
    // HEAD on every GET route (RFC 9110 §9.1): uptime monitors and link checkers ask with HEAD.
    // The GET handler runs, with its checks, and the body is dropped unsent (an event stream's
    // too, so a HEAD on it ends at once).
    let router = Router(context: AppContext.self, options: .autoGenerateHeadEndpoints)
    router.addMiddleware {
        LogRequestsMiddleware()
        MetricsMiddleware()
        // Outside the problems, so that an error page or problem document carries them too.
        SecurityHeadersMiddleware()
        ProblemMiddleware(pages: services.pages)
        IdentityMiddleware(store: services.store, callers: services.callers)
        ResponseCacheMiddleware(cache: services.responses, changes: services.store.changes)
    }
    let store = services.store

    router.get("/healthz") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
    }
    router.get("/readyz") { _, _ in
        do {
            try await Migrations.requireCurrent(store)
            return try JSON.response(["status": "ready", "schema": "\(Migrations.latest)"])
        } catch {
            return try JSON.response(["status": "not ready", "reason": "\(error)"], status: .serviceUnavailable)
        }
    }
    router.get("/metrics") { _, _ in
        var buffer: [UInt8] = []
        Telemetry.registry.emit(into: &buffer)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
    }
    router.get("/api/v1/openapi.yaml") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: services.openAPIDocument)))
    }
    router.get("/api/docs") { _, _ in try services.pages.apiReference() }
    // Firmware for devices, by the token in the address they were offered (no account).
    router.get("/ota/:token", use: API(services: services).firmwareDownload)

    API(services: services).register(router.group("/api/v1"))
    WebConsole(services: services).register(router)
    Open311(services: services).register(router)
    // Last, after every route: it wraps only the router's not-found responder (see its comment),
    // and its table must hold every route.
    router.add(middleware: MethodNotAllowedMiddleware<AppContext>(routes: RouteMethods(router, headForGet: true)))
    return router
}

public func buildApplication(_ services: AppServices, logger: Logger, alongside: [any Service] = [])
    -> some ApplicationProtocol
{
    let router = buildRouter(services)
    let idle = TimeAmount.seconds(Int64(services.configuration.httpIdleSeconds))
    var app = Application(
        router: router,
        server: .http1(
            configuration: .init(additionalChannelHandlers: [RequestBodyPause(limit: idle)], idleTimeout: idle)),
        configuration: .init(
            address: .hostname(services.configuration.host, port: services.configuration.port), serverName: "Linli"),
        logger: logger
    )
    // Shutdown runs in reverse: the HTTP server drains first, then these, then the database closes.
    app.addServices(DatabaseService(store: services.store))
    app.addServices(alongside)
    return app
}

/// One structured log line per request, with the request id Hummingbird assigns.
struct LogRequestsMiddleware: RouterMiddleware {
    typealias Context = AppContext
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        context.logger.info(
            "request",
            metadata: [
                "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
                "ms": "\(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)",
            ])
        return response
    }
}

struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = AppContext
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return response
    }
}

/// Community rows by id, kept for half a minute: almost every request names its community, and
/// communities change rarely (and only by name or address, never by id or tenancy).
final class CommunityDirectory: Sendable {
    private let entries = Mutex<[ID: (community: Community, until: ContinuousClock.Instant)]>([:])

    func community(_ id: ID, store: Store) async throws -> Community? {
        let now = ContinuousClock.now
        if let hit = entries.withLock({ $0[id] }), hit.until > now { return hit.community }
        guard let found = try? await store.community(id, scope: .everything, memberships: []) else { return nil }
        entries.withLock { map in
            if map.count > 10_000 { map.removeAll() }
            map[id] = (found, now + .seconds(30))
        }
        return found
    }
}

/// Closes a connection whose request body stops arriving for `limit`. Hummingbird's idle timeout
/// covers the time between requests and unfinished headers; once a request's head is in, a client
/// that sends part of the body and then nothing would hold the connection and its handler for
/// ever. A pause is measured, not the whole body, so a large photo on a slow line still arrives.
final class RequestBodyPause: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let limit: TimeAmount
    private var deadline: Scheduled<Void>?

    init(limit: TimeAmount) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deadline?.cancel()
        deadline = nil
        switch unwrapInboundIn(data) {
        case .head, .body:
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: limit) {
                bound.value.close(promise: nil)
            }
        case .end:
            break
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}
