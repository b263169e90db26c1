import Foundation
import Hummingbird
import LinliCore
import LinliHTTP
import LinliStorage

/// The JSON routes under /api/v1 of this module.
struct API: ModuleRoutes {
    let services: AppServices
}

/// The pages of this module, in the console.
struct WebConsole: ModuleRoutes {
    let services: AppServices
}

/// The household sheet as the assembly sees it: a community's households, residents and their
/// residencies read from a spreadsheet (UTF-8 or GBK, as Excel saves it) and written back to one,
/// over the API and on the console's import page.
public enum HouseholdImportModule {
    /// Adds the module's JSON routes to `api` (mounted at /api/v1) and its pages to `router`.
    public static func register(api: RouterGroup<AppContext>, router: Router<AppContext>, services: AppServices) {
        API(services: services).register(api)
        WebConsole(services: services).register(router)
    }

    /// Its part of the OpenAPI document: its paths and the components only they use.
    public static var openAPI: String { get throws { try Bundle.module.text("openapi.yaml") } }

    /// Its Mustache templates, for the application's one library of pages.
    public static var templates: URL { get throws { try Bundle.module.folder("Templates") } }
}
