import Foundation
import Hummingbird
import LinliCore
import LinliStorage

/// The kernel's own routes and pages as the assembly sees them: signing in and out, accounts'
/// tokens, the audit and event logs.
public enum HTTPKernel {
    public static func register(api: RouterGroup<AppContext>, router: Router<AppContext>, services: AppServices) {
        API(services: services).register(api)
        WebConsole(services: services).register(router)
    }

    /// Its part of the OpenAPI document: its paths and the components only they use.
    public static var openAPI: String { get throws { try Bundle.module.text("openapi.yaml") } }
}
