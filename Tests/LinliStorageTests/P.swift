import Testing
@testable import LinliStorage
@Test func placeholderStorage() {}
