/// Why the analyzer cannot color an image at all. Problems with individual frames are not
/// errors: those frames are colored `unknown` and counted as anomalies.
public enum AnalyzerError: Error, Sendable, Equatable, CustomStringConvertible {
  case badImage(String)
  case noVMCoreInfo
  case kernelMismatch(image: String, layout: String)
  case missingFact(String)
  case layout(String)

  public var description: String {
    switch self {
    case .badImage(let why): why
    case .noVMCoreInfo:
      "no valid vmcoreinfo note in guest memory: cannot locate the kernel (is this a Linux guest's RAM? was it taken before the kernel booted?)"
    case .kernelMismatch(let image, let layout):
      "the guest runs kernel build \(image) but the layout is for build \(layout): use the layout of the running kernel"
    case .missingFact(let what): "cannot analyze: \(what)"
    case .layout(let why): "layout: \(why)"
    }
  }
}
