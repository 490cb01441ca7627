// A libFuzzer entry point for the layout reader and validator, compiled only on request (the
// package never defines KSCOPE_LIBFUZZER_LAYOUT); KscopeCore is built as a module first:
//
//   swiftc -parse-as-library -module-name KscopeCore -emit-module -emit-module-path m/KscopeCore.swiftmodule \
//     -emit-library -static -O -sanitize=fuzzer,address $(find Sources/KscopeCore -name '*.swift') -o m/libKscopeCore.a
//   swiftc -parse-as-library -module-name KscopeLayout -I m -L m -lKscopeCore -D KSCOPE_LIBFUZZER_LAYOUT -O \
//     -sanitize=fuzzer,address Sources/KscopeLayout/*.swift -o layout-fuzzer
//   ./layout-fuzzer -max_len=200000 -max_total_time=600 -timeout=5 corpus/
//
// Every input must load or be refused; a loaded layout goes through the validator, and one
// that passes through every lookup the walkers and `layout show` make.
#if KSCOPE_LIBFUZZER_LAYOUT
  @_cdecl("LLVMFuzzerTestOneInput")
  public func layoutFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let l = try? KernelLayout(isfBytes: Array(UnsafeBufferPointer(start: data, count: size))) else {
      return 0
    }
    _ = try? l.validateStructure()
    for name in l.userTypes.keys { _ = try? l.describe(type: name) }
    _ = l.summary()
    guard (try? l.validate(request: .default)) != nil else { return 0 }
    for (type, members) in LayoutRequest.default.requiredMembers {
      for alternatives in members { _ = try? l.offset(of: type, member: alternatives) }
      _ = try? l.size(of: type)
    }
    _ = try? l.restricted(to: .default)
    _ = l.isfText()
    return 0
  }
#endif
