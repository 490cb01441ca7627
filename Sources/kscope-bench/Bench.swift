// kscope-bench: release-build benchmarks. Run: swift run -c release kscope-bench <name> [options]
import Foundation
import KscopeOS

@main
struct Bench {
  static func main() {
    do {
      try dispatch(Array(CommandLine.arguments.dropFirst()))
    } catch {
      // One line, like every kscope error.
      FileHandle.standardError.write(Data("kscope-bench: \(error)\n".utf8))
      SystemInfo.exit(1)
    }
  }

  static func dispatch(_ args: [String]) throws {
    switch args.first {
    case "colormap": try ColorMapBench.run(Array(args.dropFirst()))
    case "color": try ColorBench.run(Array(args.dropFirst()))
    case "layout": try LayoutBench.run(Array(args.dropFirst()))
    case "btf": try BTFBench.run(Array(args.dropFirst()))
    case "vm": try VMBench.run(Array(args.dropFirst()))
    case "host": try HostBench.run(Array(args.dropFirst()))
    case "engine": try EngineBench.run(Array(args.dropFirst()))
    case "clones-memory": try ClonesMemoryBench.run(Array(args.dropFirst()))
    case nil:
      print("usage: kscope-bench colormap|color|layout|btf|vm|host|engine|clones-memory [options] (the clone evaluation is kscope bench clones)")
    case let other?:
      throw BenchError("unknown benchmark '\(other)' (colormap, color, layout, btf, vm, host, engine, clones-memory; the clone evaluation is kscope bench clones)")
    }
  }
}
