import Foundation
import Hummingbird
import LinliCore
import LinliHTTP
import LinliStorage

/// The JSON routes under /api/v1 of this module.
struct API: ModuleRoutes {
    let services: AppServices
}

/// The pages of this module, in the console and the resident portal.
struct WebConsole: ModuleRoutes {
    let services: AppServices
}

/// Work orders as the assembly sees it: their API and pages, residents' reports and Open311.
public enum WorkOrdersModule {
    /// Adds the module's JSON routes to `api` (mounted at /api/v1) and its pages to `router`.
    public static func register(api: RouterGroup<AppContext>, router: Router<AppContext>, services: AppServices) {
        let json = API(services: services)
        json.registerWorkOrders(api)
        let pages = WebConsole(services: services)
        pages.registerPortalReports(router)
        pages.registerWorkOrders(router)
        pages.registerOrganisationDesk(router)
        pages.registerRoster(router)
        Open311(services: services).register(router)
        services.overviewParts.add(WorkOrdersOverview())
    }

    /// Its part of the OpenAPI document: its paths and the components only they use.
    public static var openAPI: String { get throws { try Bundle.module.text("openapi.yaml") } }

    /// Its Mustache templates, for the application's one library of pages.
    public static var templates: URL { get throws { try Bundle.module.folder("Templates") } }
}
