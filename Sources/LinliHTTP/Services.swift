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

/// Prometheus registry behind swift-metrics, bootstrapped once per process.
public enum Telemetry {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped: Bool = {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return true
    }()

    public static func bootstrap() { _ = bootstrapped }
}

/// The settings the HTTP kernel reads; the assembly makes them from its configuration.
public struct HTTPSettings: Sendable {
    public var host: String
    public var port: Int
    /// Where uploads (photos, firmware) are kept, beside the embedded database.
    public var dataDirectory: String
    public var sessionHours: Int
    public var secureCookies: Bool
    public var httpIdleSeconds: Int
    /// Reverse proxies whose `X-Forwarded-For` names the client (`trusted-proxies`).
    public var trustedProxies: [IPAddressRange]
    /// Sockets at most, per address, and the deadlines a request keeps (see `HTTPConnectionLimits`).
    public var maxConnections: Int
    public var connectionsPerAddress: Int
    public var headerSeconds: Int
    /// Bytes a second a body must average after its first 10 s (0: no minimum).
    public var minBodyRate: Int

    public init(
        host: String = "127.0.0.1", port: Int = 8080, dataDirectory: String = "./linli-data", sessionHours: Int = 12,
        secureCookies: Bool = false, httpIdleSeconds: Int = 60, trustedProxies: [IPAddressRange] = [],
        maxConnections: Int = 4_096, connectionsPerAddress: Int = 256, headerSeconds: Int = 10, minBodyRate: Int = 1_024
    ) {
        self.trustedProxies = trustedProxies
        self.maxConnections = maxConnections
        self.connectionsPerAddress = connectionsPerAddress
        self.headerSeconds = headerSeconds
        self.minBodyRate = minBodyRate
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.sessionHours = sessionHours
        self.secureCookies = secureCookies
        self.httpIdleSeconds = httpIdleSeconds
    }
}

/// Everything the HTTP layer needs, built once at start. What a capability module needs beyond it
/// (its broker side, its engine, its settings) it keeps in `attachments`, set by the assembly.
public struct AppServices: Sendable {
    public let store: Store
    public let configuration: HTTPSettings
    public let throttle: LoginThrottle
    public let pages: Pages
    /// The OpenAPI document, as the assembly put it together from the modules' parts.
    public let openAPIDocument: String
    public let attachments = Attachments()
    package let callers = CallerCache()
    package let responses = ResponseCache()

    public init(
        store: Store, configuration: HTTPSettings, logger: Logger, templates: [URL], openAPIDocument: String
    ) throws {
        self.store = store
        self.configuration = configuration
        throttle = LoginThrottle(logger: logger)
        pages = try Pages(folders: [Pages.kernelTemplates] + templates)
        self.openAPIDocument = openAPIDocument
    }
}

/// One structured log line per request, with the request id Hummingbird assigns.
package struct LogRequestsMiddleware: RouterMiddleware {
    package typealias Context = AppContext
    package init() {}
    package func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
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

package struct SecurityHeadersMiddleware: RouterMiddleware {
    package typealias Context = AppContext
    package init() {}
    package static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    package func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        // The second wall behind escaping: only this origin's script and style files run (no
        // inline script, style or handler; the pages' scripts are `/assets/*.js`), nothing may
        // frame the pages, no plugins, and forms post only here.
        response.headers[HTTPField.Name("Content-Security-Policy")!] = Self.contentSecurityPolicy
        return response
    }
}

/// Closes a connection whose request body stops arriving for `limit`. Hummingbird's idle timeout
/// covers the time between requests and unfinished headers; once a request's head is in, a client
/// that sends part of the body and then nothing would hold the connection and its handler for
/// ever. A pause is measured, not the whole body, so a large photo on a slow line still arrives.
///
/// A body must also keep an average of `minimumRate` bytes a second once it has had 10 s: a
/// client sending a byte every few seconds never pauses long enough, and would hold a 16 MiB
/// upload's connection for weeks.
package final class RequestBodyPause: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPRequestPart
    package typealias InboundOut = HTTPRequestPart

    private let limit: TimeAmount
    private let minimumRate: Int
    private var deadline: Scheduled<Void>?
    private var rateCheck: Scheduled<Void>?
    private var bodyStarted: NIODeadline?
    private var bodyBytes = 0

    package init(limit: TimeAmount, minimumRate: Int = 0) {
        self.limit = limit
        self.minimumRate = minimumRate
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deadline?.cancel()
        deadline = nil
        switch unwrapInboundIn(data) {
        case .head:
            bodyStarted = .now()
            bodyBytes = 0
            scheduleRateCheck(context)
            fallthrough
        case .body:
            if case let .body(bytes) = unwrapInboundIn(data) { bodyBytes += bytes.readableBytes }
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: limit) {
                bound.value.close(promise: nil)
            }
        case .end:
            bodyStarted = nil
            rateCheck?.cancel()
            rateCheck = nil
        }
        context.fireChannelRead(data)
    }

    /// Every 5 s while a body arrives: below the minimum average after 10 s, the connection closes.
    private func scheduleRateCheck(_ context: ChannelHandlerContext) {
        rateCheck?.cancel()
        guard minimumRate > 0 else { return }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        rateCheck = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(5)) { [weak self] in
            guard let self, let started = self.bodyStarted else { return }
            let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
            if seconds >= 10, Double(self.bodyBytes) < Double(self.minimumRate) * seconds {
                bound.value.close(promise: nil)
            } else {
                self.scheduleRateCheck(bound.value)
            }
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        rateCheck?.cancel()
        rateCheck = nil
    }

    package func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        rateCheck?.cancel()
        rateCheck = nil
        context.fireChannelInactive()
    }
}
