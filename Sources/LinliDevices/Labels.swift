import LinliDeviceRegistry
import LinliHTTP

// Devices' codes as pages show them: by their labels in the catalogue.
extension DeviceStatus: CodeLabel { public static var labelPrefix: String { "deviceStatus" } }
extension NodeType: CodeLabel { public static var labelPrefix: String { "nodeType" } }
extension UpgradeStatus: CodeLabel { public static var labelPrefix: String { "upgradeStatus" } }
