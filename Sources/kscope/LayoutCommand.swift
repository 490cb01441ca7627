import ArgumentParser

// Placeholder: replaced by the layout issue (kscope layout extract|show|import).
struct LayoutCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "layout", abstract: "Kernel layouts from a guest vmlinux (not yet built).")
  func run() throws { throw CommandFailure("kscope layout is not built yet") }
}
