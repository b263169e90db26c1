import Foundation
import Hummingbird
import LinliCore
import LinliDeviceRegistry
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

/// Devices as the assembly sees it: the registry, products, firmware and commands over the API,
/// their pages, and the firmware downloads devices fetch with the token they were offered.
public enum DevicesModule {
    /// Adds the module's JSON routes to `api` (mounted at /api/v1) and its pages to `router`.
    public static func register(api: RouterGroup<AppContext>, router: Router<AppContext>, services: AppServices) {
        let json = API(services: services)
        json.registerDevices(api)
        json.registerFirmware(api)
        json.registerCommands(api)
        let pages = WebConsole(services: services)
        pages.registerDevices(router)
        pages.registerProducts(router)
        pages.registerDeviceForms(router)
        // Firmware for devices, by the token in the address they were offered (no account).
        router.get("/ota/:token", use: json.firmwareDownload)
        services.overviewParts.add(DevicesOverview())
    }

    /// Its part of the OpenAPI document: its paths and the components only they use.
    public static var openAPI: String { get throws { try Bundle.module.text("openapi.yaml") } }

    /// Its Mustache templates, for the application's one library of pages.
    public static var templates: URL { get throws { try Bundle.module.folder("Templates") } }
}

extension AppServices {
    /// The broker's side of devices, when the broker runs (`--mqtt off` leaves it nil).
    package var devices: DeviceGateway? { attachments.get() }
}
