import LinliHTTP

// Alarms' codes as pages show them: by their labels in the catalogue.
extension AlarmSeverity: CodeLabel { public static var labelPrefix: String { "severity" } }
extension Alarm.Status: CodeLabel { public static var labelPrefix: String { "alarmStatus" } }
