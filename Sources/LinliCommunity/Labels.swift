import LinliHTTP

// The community's codes as pages show them: by their labels in the catalogue.
extension Occupancy: CodeLabel { public static var labelPrefix: String { "occupancy" } }
extension CareTag: CodeLabel { public static var labelPrefix: String { "careTag" } }
extension ResidencyRole: CodeLabel { public static var labelPrefix: String { "residencyRole" } }
extension OrganisationKind: CodeLabel { public static var labelPrefix: String { "organisationKind" } }
