// kscope-bench: release-build benchmarks. Run: swift run -c release kscope-bench <name> [options]
@main
struct Bench {
  static func main() throws {
    let args = Array(CommandLine.arguments.dropFirst())
    switch args.first {
    case "colormap": try ColorMapBench.run(Array(args.dropFirst()))
    case "color": try ColorBench.run(Array(args.dropFirst()))
    case "layout": try LayoutBench.run(Array(args.dropFirst()))
    case "vm": try VMBench.run(Array(args.dropFirst()))
    default:
      print("usage: kscope-bench colormap|color|layout|vm [options]")
    }
  }
}
