import ArgumentParser

// Placeholder: replaced by the VM issue (kscope vm image|start|list|stop|snapshot|clone).
struct VMCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vm", abstract: "Parent VMs under QEMU (not yet built).")
  func run() throws { throw CommandFailure("kscope vm is not built yet") }
}
