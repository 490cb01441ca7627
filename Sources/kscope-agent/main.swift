// kscope-agent: the guest agent. Publishes kernel-symbol, frame-class and page-cache hints into
// the ivshmem shared region (or a file) for the host. No Foundation: a small static binary.
import KscopeAgent
import KscopeOS

let usage = """
  usage: kscope-agent [--out FILE [--size BYTES]] [--interval DURATION] [--once]
                      [--root DIR]... [--no-frames] [--no-files] [--no-file-frames]
                      [--max-files N] [--no-btf] [--cpu-budget PERCENT] [--garbage [--seed N]]
                      [--verbose]

  Publishes the guest's hints (kernel symbols, per-frame classes from /proc/kpageflags, cached
  files) into the ivshmem device's BAR2 (PCI 1af4:1110), or into FILE with --out (created with
  --size bytes, default 4M, if missing). Refreshes every --interval (default 1s; 500ms, 2s, 1m)
  and on SIGUSR1, spacing refreshes so its average CPU stays under --cpu-budget (default 1%,
  0 for no limit); SIGTERM stops it. --root (repeatable) chooses where to look for cached files
  (default: / and every block-device mount). The kernel's BTF (/sys/kernel/btf/vmlinux) is
  published too, zstd-compressed, unless --no-btf. --garbage writes damaged regions instead (a test
  of the host's reader). Needs root.
  """

func fail(_ message: String) -> Never {
  SystemInfo.writeStandardError("kscope-agent: \(message)\n")
  SystemInfo.exit(2)
}

func log(_ message: String) {
  SystemInfo.writeStandardError("kscope-agent: \(message)\n")
}

/// "1s", "500ms", "2m", "1.5s", or plain seconds.
func parseDuration(_ s: String) -> UInt64? {
  let units: [(String, Double)] = [("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
  for (u, scale) in units where s.hasSuffix(u) {
    guard let v = Double(s.dropLast(u.count)), v > 0, v < 1e6 else { return nil }
    return UInt64(v * scale)
  }
  guard let v = Double(s), v > 0, v < 1e6 else { return nil }
  return UInt64(v * 1e9)
}

/// "4M", "1048576", "64K".
func parseSize(_ s: String) -> Int? {
  let scale: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
  if let last = s.last, let m = scale[Character(last.uppercased())] {
    return Int(s.dropLast()).map { $0 * m }
  }
  return Int(s)
}

var options = AgentOptions()
var roots: [String] = []
var args = CommandLine.arguments.dropFirst()
// Guest images install this binary as /usr/bin/kscope and start it as `kscope agent` (the
// issue's name for it): a leading "agent" word is accepted and ignored.
if args.first == "agent" { args = args.dropFirst() }
// `kscope reseed HEX`: the host reseeds a resumed clone's RNG (see Reseed), then exits.
if args.first == "reseed" {
  guard args.count == 2, let seed = Reseed.parseSeed(args.last!) else { fail("usage: kscope reseed HEX (32..256 bytes)") }
  if let problem = Reseed.run(seed) { fail(problem) }
  SystemInfo.exit(0)
}
@MainActor func value(_ flag: String) -> String {
  guard let v = args.popFirst() else { fail("\(flag) needs a value\n\(usage)") }
  return v
}
while let a = args.popFirst() {
  switch a {
  case "--out": options.out = value(a)
  case "--size":
    guard let n = parseSize(value(a)) else { fail("bad --size") }
    options.regionSize = n
  case "--interval":
    guard let d = parseDuration(value(a)) else { fail("bad --interval (e.g. 1s, 500ms)") }
    options.intervalNanoseconds = d
  case "--once": options.once = true
  case "--root": roots.append(value(a))
  case "--no-frames": options.frames = false
  case "--no-files": options.files = false
  case "--no-file-frames": options.fileFrames = false
  case "--no-btf": options.btf = false
  case "--max-files":
    guard let n = Int(value(a)), n >= 0 else { fail("bad --max-files") }
    options.maxFiles = n
  case "--cpu-budget":
    let v = value(a)
    guard let p = Double(v.hasSuffix("%") ? String(v.dropLast()) : v), p >= 0, p <= 100 else {
      fail("bad --cpu-budget (a percentage of one CPU, e.g. 1%)")
    }
    options.cpuBudget = p / 100
  case "--garbage": options.garbageSeed = options.garbageSeed ?? UInt64(SystemInfo.unixTime())
  case "--seed":
    guard let s = UInt64(value(a)) else { fail("bad --seed") }
    options.garbageSeed = s
  case "--verbose", "-v": options.verbose = true
  case "--help", "-h":
    print(usage)
    SystemInfo.exit(0)
  default: fail("unknown argument \(a)\n\(usage)")
  }
}
if !roots.isEmpty { options.roots = roots }

// Blocked before anything else so SIGUSR1/SIGTERM are always collected by the main loop.
SignalWait.block()
do {
  let agent = try Agent(options: options)
  log(
    "publishing to \(agent.regionPath) (\(agent.regionSize) bytes)"
      + (options.garbageSeed.map { ", GARBAGE mode, seed \($0)" } ?? ""))
  for p in agent.kernelProblems { log("kernel hints: \(p)") }
  agent.run(log: log)
} catch {
  fail(error.description)
}
