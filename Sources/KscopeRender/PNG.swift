import CZlib

/// PNG encoding of a canvas (ISO/IEC 15948, the PNG specification): the signature, IHDR for
/// 8-bit RGB, the filtered scanlines deflated by the system's zlib in IDAT chunks, IEND. Every
/// chunk's CRC is zlib's `crc32` over its type and data.
/// Kept rather than libpng (same zlib underneath), measured by host/bench/libs/run.sh on a
/// 1106x1133 map picture: this 236-376 ms and 71,022 bytes, libpng at level 9 with all filters
/// 206-521 ms and 72,520 bytes; ~60 lines of framing are not worth a second image library.
///
/// Scanline filters: each row gets the one of the five filters with the smallest sum of
/// absolute (signed) filtered bytes, the heuristic the specification suggests. On these
/// pictures Up wins rows that repeat the one above (blocks, legend gaps) and Sub wins flat runs.
public enum PNG {
  public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
  /// IDAT chunks are cut at this size, so a decoder can stream them.
  static let idatChunkSize = 1 << 20

  public static func encode(_ canvas: Canvas) throws(RenderError) -> [UInt8] {
    var out = signature
    var ihdr: [UInt8] = []
    appendU32(&ihdr, UInt32(canvas.width))
    appendU32(&ihdr, UInt32(canvas.height))
    // Bit depth 8, color type 2 (RGB), deflate, adaptive filtering, no interlace.
    ihdr += [8, 2, 0, 0, 0]
    appendChunk(&out, "IHDR", ihdr)

    let compressed = try Zlib.compress(filtered(canvas), level: 9)
    var start = 0
    repeat {
      let end = min(start + idatChunkSize, compressed.count)
      appendChunk(&out, "IDAT", Array(compressed[start..<end]))
      start = end
    } while start < compressed.count
    appendChunk(&out, "IEND", [])
    return out
  }

  /// The scanlines, each preceded by its filter type byte.
  static func filtered(_ canvas: Canvas) -> [UInt8] {
    let stride = canvas.width * 3
    var out: [UInt8] = []
    out.reserveCapacity(canvas.height * (stride + 1))
    let zero = [UInt8](repeating: 0, count: stride)
    var candidate = [UInt8](repeating: 0, count: stride)
    var best = [UInt8](repeating: 0, count: stride)
    for y in 0..<canvas.height {
      let row = Array(canvas.pixels[(y * stride)..<((y + 1) * stride)])
      let above = y == 0 ? zero : Array(canvas.pixels[((y - 1) * stride)..<(y * stride)])
      var bestType: UInt8 = 0
      var bestCost = Int.max
      for type: UInt8 in 0...4 {
        var cost = 0
        for i in 0..<stride {
          let a = i >= 3 ? row[i - 3] : 0
          let b = above[i]
          let c = i >= 3 ? above[i - 3] : 0
          let v = row[i] &- predictor(type, a: a, b: b, c: c)
          candidate[i] = v
          cost += v < 128 ? Int(v) : 256 - Int(v)
        }
        if cost < bestCost {
          bestCost = cost
          bestType = type
          swap(&best, &candidate)
        }
      }
      out.append(bestType)
      out += best
    }
    return out
  }

  /// The prediction of each filter type from the bytes left (a), above (b), above-left (c).
  @inline(__always)
  public static func predictor(_ type: UInt8, a: UInt8, b: UInt8, c: UInt8) -> UInt8 {
    switch type {
    case 1: return a
    case 2: return b
    case 3: return UInt8((Int(a) + Int(b)) / 2)
    case 4:
      // Paeth: whichever of a, b, c is closest to a + b - c (ties: a, then b).
      let p = Int(a) + Int(b) - Int(c)
      let pa = abs(p - Int(a))
      let pb = abs(p - Int(b))
      let pc = abs(p - Int(c))
      if pa <= pb && pa <= pc { return a }
      return pb <= pc ? b : c
    default: return 0
    }
  }

  static func appendU32(_ out: inout [UInt8], _ v: UInt32) {
    out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
  }

  /// Length, type, data, CRC-32 of type and data.
  static func appendChunk(_ out: inout [UInt8], _ type: String, _ data: [UInt8]) {
    let typeBytes = Array(type.utf8)
    appendU32(&out, UInt32(data.count))
    out += typeBytes
    out += data
    appendU32(&out, Zlib.crc32(typeBytes + data))
  }
}

/// The two zlib entry points kscope uses. The only unsafe pointers of this module are here.
public enum Zlib {
  /// A zlib stream (RFC 1950) of `bytes`, from zlib's `compress2`.
  public static func compress(_ bytes: [UInt8], level: Int32) throws(RenderError) -> [UInt8] {
    var capacity = compressBound(uLong(bytes.count))
    var out = [UInt8](repeating: 0, count: Int(capacity))
    let rc = out.withUnsafeMutableBufferPointer { dst in
      bytes.withUnsafeBufferPointer { src in
        compress2(dst.baseAddress, &capacity, src.baseAddress, uLong(src.count), level)
      }
    }
    guard rc == Z_OK else { throw .zlib(operation: "compress2", code: rc) }
    out.removeLast(out.count - Int(capacity))
    return out
  }

  /// CRC-32 (the PNG and gzip one) of `bytes`, from zlib's `crc32`.
  public static func crc32(_ bytes: [UInt8]) -> UInt32 {
    let v = bytes.withUnsafeBufferPointer { b in
      CZlib.crc32(CZlib.crc32(0, nil, 0), b.baseAddress, uInt(b.count))
    }
    return UInt32(truncatingIfNeeded: v)
  }
}
