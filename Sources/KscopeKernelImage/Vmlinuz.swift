import CLz4
import CLzma
import CZlib
import CZstd
import KscopeLayout
import KscopeOS

/// A guest kernel file without DWARF: a vmlinuz (bzImage), a stripped vmlinux ELF, or a raw BTF
/// blob (/sys/kernel/btf/vmlinux).
public enum KernelImageFile {
  public enum Kind: String, Sendable {
    case bzImage = "vmlinuz", elf = "vmlinux", rawBTF = "btf"
  }

  /// The decompressed payload may not be larger than this (Debian's is 55-60 MiB).
  public static let maxDecompressed = 512 << 20

  public static func kind(of bytes: UnsafeRawBufferPointer) -> Kind? {
    if bytes.count >= 4, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 { return .elf }
    if bytes.count >= 3, bytes[0] == 0x9F, bytes[1] == 0xEB, bytes[2] == 1 { return .rawBTF }
    if bytes.count >= 0x206, bytes[0x202] == 0x48, bytes[0x203] == 0x64, bytes[0x204] == 0x72, bytes[0x205] == 0x53 {
      return .bzImage
    }
    return nil
  }

  /// The ELF inside a vmlinuz.
  public static func decompressELF(_ image: UnsafeRawBufferPointer) throws(BTFError) -> [UInt8] {
    let payload = try BzImagePayload.parse(image)
    guard payload.decompressedSize > 0, payload.decompressedSize <= maxDecompressed else {
      throw BTFError("vmlinuz: implausible decompressed size \(payload.decompressedSize)")
    }
    let src = UnsafeRawBufferPointer(rebasing: image[payload.offset..<(payload.offset + payload.length)])
    let out: [UInt8]
    switch payload.compression {
    case .zstd: out = try zstd(src, size: payload.decompressedSize)
    case .lz4: out = try lz4Legacy(src, size: payload.decompressedSize)
    case .xz: out = try xz(src, size: payload.decompressedSize)
    case .gzip: out = try gzip(src, size: payload.decompressedSize)
    case .none: out = Array(src)
    default:
      throw BTFError("vmlinuz: \(payload.compression.rawValue) compression is not supported (zstd, lz4, xz, gzip are)")
    }
    guard out.count == payload.decompressedSize else {
      throw BTFError("vmlinuz: payload decompressed to \(out.count) bytes, the image says \(payload.decompressedSize)")
    }
    return out
  }

  static func zstd(_ src: UnsafeRawBufferPointer, size: Int) throws(BTFError) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: size)
    let n = out.withUnsafeMutableBytes { dst in
      ZSTD_decompress(dst.baseAddress, dst.count, src.baseAddress, src.count)
    }
    if ZSTD_isError(n) != 0 { throw BTFError("vmlinuz: zstd: \(String(cString: ZSTD_getErrorName(n)))") }
    out.removeSubrange(Int(n)...)
    return out
  }

  /// The kernel's LZ4 "legacy" format: magic 0x184C2102, then blocks of (le32 compressed
  /// size, data), each inflating to at most 8 MiB.
  static func lz4Legacy(_ src: UnsafeRawBufferPointer, size: Int) throws(BTFError) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: size)
    var at = 4
    var written = 0
    let block = 8 << 20
    while src.count - at >= 4 {
      let n = Int(Kallsyms.u32(src, at))
      if n == 0x184C_2102 { at += 4; continue }  // concatenated stream
      at += 4
      guard n > 0, n <= src.count - at else { throw BTFError("vmlinuz: lz4 block of \(n) bytes runs past the payload") }
      let room = min(block, size - written)
      guard room > 0 else { throw BTFError("vmlinuz: lz4 data beyond the declared size") }
      let got = out.withUnsafeMutableBytes { dst in
        LZ4_decompress_safe(
          src.baseAddress!.advanced(by: at).assumingMemoryBound(to: CChar.self),
          dst.baseAddress!.advanced(by: written).assumingMemoryBound(to: CChar.self), Int32(n), Int32(room))
      }
      guard got > 0 else { throw BTFError("vmlinuz: lz4 block at \(at) is corrupt") }
      written += Int(got)
      at += n
    }
    out.removeSubrange(written...)
    return out
  }

  static func xz(_ src: UnsafeRawBufferPointer, size: Int) throws(BTFError) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: size)
    var memlimit: UInt64 = 1 << 30
    var inPos = 0, outPos = 0
    let rc = out.withUnsafeMutableBytes { dst in
      lzma_stream_buffer_decode(
        &memlimit, 0, nil, src.baseAddress!.assumingMemoryBound(to: UInt8.self), &inPos, src.count,
        dst.baseAddress!.assumingMemoryBound(to: UInt8.self), &outPos, dst.count)
    }
    guard rc == LZMA_OK else { throw BTFError("vmlinuz: xz decoding failed (lzma_ret \(rc.rawValue))") }
    out.removeSubrange(outPos...)
    return out
  }

  static func gzip(_ src: UnsafeRawBufferPointer, size: Int) throws(BTFError) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: size)
    var stream = z_stream()
    guard inflateInit2_(&stream, 16 + 15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
      throw BTFError("vmlinuz: zlib inflateInit failed")
    }
    defer { inflateEnd(&stream) }
    let rc = out.withUnsafeMutableBytes { dst -> Int32 in
      stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress!.assumingMemoryBound(to: UInt8.self))
      stream.avail_in = UInt32(src.count)
      stream.next_out = dst.baseAddress!.assumingMemoryBound(to: UInt8.self)
      stream.avail_out = UInt32(dst.count)
      return inflate(&stream, Z_FINISH)
    }
    guard rc == Z_STREAM_END else { throw BTFError("vmlinuz: gzip inflate failed (\(rc))") }
    out.removeSubrange(Int(stream.total_out)...)
    return out
  }

  /// A layout from a vmlinuz, a stripped vmlinux, or (types only, `typesOnly`) a raw BTF file.
  public static func layout(path: String, request: LayoutRequest = .default, typesOnly: Bool = false)
    throws(BTFError) -> KernelLayout
  {
    let file: MappedFile
    do { file = try MappedFile(path: path) } catch { throw BTFError(error.description) }
    guard let all = file.bytes(at: 0, count: file.size) else { throw BTFError("\(path): unreadable") }
    let name = path.split(separator: "/").last.map(String.init) ?? path
    switch kind(of: all) {
    case .bzImage:
      let elf = try decompressELF(all)
      let result: Result<KernelLayout, BTFError> = elf.withUnsafeBytes { raw in
        do throws(BTFError) {
          return .success(try KernelLayout.fromKernelELF(raw, request: request, sourceName: name))
        } catch { return .failure(error) }
      }
      return try result.get()
    case .elf:
      return try KernelLayout.fromKernelELF(all, request: request, sourceName: name)
    case .rawBTF:
      guard typesOnly else {
        throw BTFError("\(path) is raw BTF: it has types but no symbols; give --types-only for a types-only layout, or the kernel's vmlinuz")
      }
      // Read, not copied out of the mapping: touching the mapped pages would count the file
      // twice in the peak RSS (its page-cache pages and the copy), 4.7 MB for 6.12's BTF.
      var bytes = [UInt8](repeating: 0, count: file.size)
      guard file.read(into: &bytes, count: file.size, at: 0) == file.size else {
        throw BTFError("\(path): cannot read \(file.size) bytes: \(Files.lastErrorText())")
      }
      let btf = try BTF(bytes)
      // Raw BTF names no release, so only a kernel with `enum pagetype` (6.12) tells its
      // page_type encoding; older ones need the rule kscope keeps per release.
      guard !btf.ids(named: [PageTypeEncoding.dwarfEnumName], kinds: [.enumeration, .enum64]).isEmpty else {
        throw BTFError("\(path): raw BTF without enum pagetype names no release, and the page_type encoding of kernels before 6.12 depends on it: give the kernel's vmlinuz")
      }
      var typesRequest = request
      typesRequest.symbols = []
      typesRequest.optionalSymbols = []
      return try KernelLayout.fromBTF(btf, symbols: [:], request: typesRequest, sourceName: name)
    case nil:
      throw BTFError("\(path): not a vmlinuz, vmlinux or BTF file")
    }
  }
}
