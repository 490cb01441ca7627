import CZlib
import KscopeRender

/// A PNG reader for the tests, independent of the encoder: it walks the chunks, checks each
/// CRC with zlib's crc32, inflates the joined IDAT data with zlib's `uncompress` and undoes the
/// five scanline filters. It reads what the renderer writes (8-bit RGB, not interlaced) and
/// rejects everything else.
struct DecodedPNG {
  var width: Int
  var height: Int
  /// Row-major RGB.
  var pixels: [UInt8]
  /// Chunk types in file order.
  var chunks: [String]

  func pixel(x: Int, y: Int) -> RGB {
    let i = (y * width + x) * 3
    return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
  }
}

struct PNGDecodeError: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}

func decodePNG(_ bytes: [UInt8]) throws -> DecodedPNG {
  let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
  guard bytes.count >= 8, Array(bytes[0..<8]) == signature else {
    throw PNGDecodeError("no PNG signature")
  }
  func u32(_ at: Int) -> Int {
    Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
  }
  var at = 8
  var chunks: [String] = []
  var width = 0
  var height = 0
  var idat: [UInt8] = []
  while at < bytes.count {
    guard at + 12 <= bytes.count else { throw PNGDecodeError("truncated chunk header at \(at)") }
    let length = u32(at)
    guard at + 12 + length <= bytes.count else {
      throw PNGDecodeError("chunk at \(at) runs past the end")
    }
    let typeAndData = Array(bytes[(at + 4)..<(at + 8 + length)])
    let type = String(decoding: typeAndData[0..<4], as: UTF8.self)
    let stored = UInt32(u32(at + 8 + length))
    let computed = typeAndData.withUnsafeBufferPointer {
      UInt32(truncatingIfNeeded: crc32(0, $0.baseAddress, uInt($0.count)))
    }
    guard stored == computed else { throw PNGDecodeError("bad CRC on \(type)") }
    let data = Array(typeAndData[4...])
    if chunks.isEmpty && type != "IHDR" { throw PNGDecodeError("first chunk is \(type), not IHDR") }
    switch type {
    case "IHDR":
      guard data.count == 13 else { throw PNGDecodeError("IHDR of \(data.count) bytes") }
      width = Int(data[0]) << 24 | Int(data[1]) << 16 | Int(data[2]) << 8 | Int(data[3])
      height = Int(data[4]) << 24 | Int(data[5]) << 16 | Int(data[6]) << 8 | Int(data[7])
      guard Array(data[8...]) == [8, 2, 0, 0, 0] else {
        throw PNGDecodeError("not 8-bit RGB, deflate, filter 0, no interlace: \(Array(data[8...]))")
      }
    case "IDAT": idat += data
    default: break
    }
    chunks.append(type)
    at += 12 + length
    if type == "IEND" { break }
  }
  guard chunks.last == "IEND", at == bytes.count else { throw PNGDecodeError("no IEND at the end") }
  guard width > 0, height > 0 else { throw PNGDecodeError("empty image") }

  let stride = width * 3
  var raw = [UInt8](repeating: 0, count: height * (stride + 1))
  var rawLength = uLongf(raw.count)
  let rc = raw.withUnsafeMutableBufferPointer { dst in
    idat.withUnsafeBufferPointer { src in
      uncompress(dst.baseAddress, &rawLength, src.baseAddress, uLong(src.count))
    }
  }
  guard rc == Z_OK, Int(rawLength) == raw.count else {
    throw PNGDecodeError("inflate failed (code \(rc), \(rawLength) of \(raw.count) bytes)")
  }

  var pixels = [UInt8](repeating: 0, count: height * stride)
  for y in 0..<height {
    let filter = raw[y * (stride + 1)]
    guard filter <= 4 else { throw PNGDecodeError("row \(y): filter type \(filter)") }
    for i in 0..<stride {
      let v = raw[y * (stride + 1) + 1 + i]
      let a = i >= 3 ? Int(pixels[y * stride + i - 3]) : 0
      let b = y > 0 ? Int(pixels[(y - 1) * stride + i]) : 0
      let c = i >= 3 && y > 0 ? Int(pixels[(y - 1) * stride + i - 3]) : 0
      let prediction: Int
      switch filter {
      case 0: prediction = 0
      case 1: prediction = a
      case 2: prediction = b
      case 3: prediction = (a + b) / 2
      default:
        let p = a + b - c
        let (pa, pb, pc) = (abs(p - a), abs(p - b), abs(p - c))
        prediction = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
      }
      pixels[y * stride + i] = UInt8(truncatingIfNeeded: Int(v) + prediction)
    }
  }
  return DecodedPNG(width: width, height: height, pixels: pixels, chunks: chunks)
}
