import LinliHTTP

// Alarms' codes as pages show them: by their labels in the catalogue.
extension AlarmSeverity: PageCode { public static var labelPrefix: String { "severity" } }
extension Alarm.Status: PageCode { public static var labelPrefix: String { "alarmStatus" } }
