import Foundation
import Hummingbird
import LinliCore
import LinliHTTP
import LinliStorage

/// The community data core as the assembly sees it.
public enum CommunityModule {
    /// Adds the module's JSON routes to `api` (mounted at /api/v1) and its pages to `router`.
    public static func register(api: RouterGroup<AppContext>, router: Router<AppContext>, services: AppServices) {
        let json = API(services: services)
        json.register(api)
        let pages = WebConsole(services: services)
        pages.register(router)
    }

    /// Its part of the OpenAPI document: its paths and the components only they use.
    public static var openAPI: String { get throws { try Bundle.module.text("openapi.yaml") } }

    /// Its Mustache templates, for the application's one library of pages.
    public static var templates: URL { get throws { try Bundle.module.folder("Templates") } }
}
