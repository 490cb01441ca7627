// host/bench/libs/run.sh, PNG part: kscope's PNG encoder (Sources/KscopeRender/PNG.swift) on
// the raw RGB pixels png.c wrote: `pngmain RGB WIDTH HEIGHT`, best of 20, and the file size.
import Foundation

func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }
let a = CommandLine.arguments
let rgb = [UInt8](try Data(contentsOf: URL(fileURLWithPath: a[1])))
var canvas = Canvas(width: Int(a[2])!, height: Int(a[3])!, fill: RGB(0, 0, 0))
canvas.pixels = rgb
var best = 1e9
var size = 0
for _ in 0..<20 {
  let t = now()
  size = try PNG.encode(canvas).count
  best = min(best, now() - t)
}
print("kscope encode \(a[2])x\(a[3]): best \(String(format: "%.1f", best * 1e3)) ms, \(size) bytes")
