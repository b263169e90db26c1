import LinliDeviceRegistry
import LinliHTTP

// Devices' codes as pages show them: by their labels in the catalogue.
extension DeviceStatus: PageCode { public static var labelPrefix: String { "deviceStatus" } }
extension NodeType: PageCode { public static var labelPrefix: String { "nodeType" } }
extension UpgradeStatus: PageCode { public static var labelPrefix: String { "upgradeStatus" } }
