// The libFuzzer entry point for the layout reader and validator. The package never defines
// KSCOPE_LIBFUZZER_LAYOUT; `host/fuzz.sh layout SECONDS` compiles this file alone against an
// instrumented build of kscope's modules and runs it.
//
// Every input must load or be refused; a loaded layout goes through the validator, and one
// that passes through every lookup the walkers and `layout show` make.
#if KSCOPE_LIBFUZZER_LAYOUT
  import KscopeLayout

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
