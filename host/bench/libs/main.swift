import Foundation
// The Swift side of host/bench/libs/run.sh.
func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec)/1e9 }
let n = 256 << 20
var buf = [UInt8](repeating: 0, count: n)
var x: UInt64 = 0x9E3779B97F4A7C15
buf.withUnsafeMutableBytes { b in
  let w = b.bindMemory(to: UInt64.self)
  for i in 0..<w.count { x ^= x << 13; x ^= x >> 7; x ^= x << 17; w[i] = x }
}
var best = 1e9
var sink: UInt64 = 0
for _ in 0..<3 { let t = now(); sink &+= XXH64.hash(buf[...]); best = min(best, now() - t) }
print("swift XXH64: \(Double(n) / best / 1e9) GB/s  (\(sink))")
let data = Data(buf)
best = 1e9
var hex = ""
for _ in 0..<2 { let t = now(); var h = SHA256(); h.update(data); hex = h.hexDigest(); best = min(best, now() - t) }
print("swift SHA256: \(Double(n) / best / 1e9) GB/s \(hex.prefix(16))")

best = 1e9
for _ in 0..<5 { let t = now(); for _ in 0..<256 { sink &+= XXH64.hash(buf[0..<(1 << 20)]) }; best = min(best, now() - t) }
print("cache-resident 1 MiB x256: swift XXH64 \(Double(n) / best / 1e9) GB/s")
