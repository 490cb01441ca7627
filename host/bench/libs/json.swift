// host/bench/libs/run.sh, JSON part: kscope's JSON reader (Sources/KscopeLayout/JSON.swift)
// against Foundation's JSONSerialization on the same ISF file, each in its own process run
// (peak RSS is per process): `json ours FILE` / `json foundation FILE`, and whether a kernel
// address (2^64 - 2^31 + 0x1000000) survives exactly.
import Foundation

func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }
func peakMiB() -> Double { var u = rusage(); getrusage(RUSAGE_SELF.rawValue, &u); return Double(u.ru_maxrss) / 1024 }

let args = CommandLine.arguments
let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: args[2])))
let address = "{\"a\": 18446744071578845184}"
let t = now()
if args[1] == "ours" {
  let v = try JSONValue.parse(bytes)
  let exact = try JSONValue.parse(address)["a"]?.uint64Value == 18446744071578845184
  print("ours:       \(String(format: "%.2f", now() - t)) s, peak RSS \(Int(peakMiB())) MiB for \(bytes.count >> 20) MiB, address exact: \(exact) \(v["metadata"] != nil)")
} else {
  let v = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
  let a = (try JSONSerialization.jsonObject(with: Data(address.utf8)) as? [String: Any])?["a"]
  let exact = (a as? NSNumber)?.uint64Value == 18446744071578845184 && "\(a!)" == "18446744071578845184"
  print("Foundation: \(String(format: "%.2f", now() - t)) s, peak RSS \(Int(peakMiB())) MiB for \(bytes.count >> 20) MiB, address exact: \(exact) (\(a.map { "\($0)" } ?? "nil")) \(v?["metadata"] != nil)")
}
