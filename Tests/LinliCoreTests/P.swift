import Testing
@testable import LinliCore
@Test func placeholderCore() {}
