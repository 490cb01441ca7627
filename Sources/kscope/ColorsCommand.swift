import ArgumentParser
import KscopeCore

struct ColorsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "colors",
    abstract: "List the colors and page flags, and what a clone does with each color.")

  @OptionGroup var out: OutputOptions

  func run() throws {
    if out.json {
      try printJSON([
        "colors": Color.allCases.map {
          [
            "name": $0.name, "code": Int($0.rawValue), "summary": $0.summary,
            "clone_action": $0.cloneAction.rawValue,
          ] as [String: Any]
        },
        "flags": PageFlags.named.map { ["name": $0.1, "bit": $0.0.rawValue.trailingZeroBitCount] },
      ])
      return
    }
    for c in Color.allCases {
      print("\(pad(c.name, 14)) \(pad(c.cloneAction.rawValue, 22)) \(c.summary)")
    }
    print("")
    print("flags: " + PageFlags.named.map(\.1).joined(separator: ", "))
  }

  func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
}
