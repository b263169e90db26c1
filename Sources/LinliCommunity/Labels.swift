import LinliHTTP

// The community's codes as pages show them: by their labels in the catalogue.
extension Occupancy: PageCode { public static var labelPrefix: String { "occupancy" } }
extension CareTag: PageCode { public static var labelPrefix: String { "careTag" } }
extension ResidencyRole: PageCode { public static var labelPrefix: String { "residencyRole" } }
extension OrganisationKind: PageCode { public static var labelPrefix: String { "organisationKind" } }
