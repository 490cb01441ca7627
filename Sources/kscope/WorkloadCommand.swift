import ArgumentParser

// Placeholder: replaced by the VM issue (kscope workload web|olap).
struct WorkloadCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "workload", abstract: "Workload drivers for parent VMs (not yet built).")
  func run() throws { throw CommandFailure("kscope workload is not built yet") }
}
