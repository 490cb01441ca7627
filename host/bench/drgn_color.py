#!/usr/bin/env python3
"""Colors every page frame of a kscope snapshot with drgn, for kscope-bench's comparison column.

drgn reads ELF cores, so the snapshot's RAM is first wrapped in one (PT_LOAD per RAM region,
PT_NOTE with the kernel's vmcoreinfo, which kscope-bench passes in a file). Then, with drgn's
own helpers, every struct page is classified the way kscope's rules do (buddy blocks, slab,
page tables, anon, page cache, reserved), and the time of each phase is printed as JSON.

usage: drgn_color.py SNAPSHOT_DIR VMLINUX VMCOREINFO_FILE
"""
import json
import os
import struct
import sys
import tempfile
import time


def write_core(path, regions, ram_path, vmcoreinfo):
    """An ELF64 core: header, program headers, the note, then each region's bytes."""
    name = b"VMCOREINFO\0"
    desc = vmcoreinfo
    note = struct.pack("<III", len(name), len(desc), 0) + name + b"\0" * ((4 - len(name) % 4) % 4)
    note += desc + b"\0" * ((4 - len(desc) % 4) % 4)
    phnum = 1 + len(regions)
    ehsize, phentsize = 64, 56
    data_start = ehsize + phentsize * phnum
    note_off = data_start
    load_off = (note_off + len(note) + 4095) & ~4095
    with open(path, "wb") as out, open(ram_path, "rb") as ram:
        ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
        out.write(ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, ehsize, 0, 0, ehsize, phentsize, phnum, 0, 0, 0))
        out.write(struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 4))
        off = load_off
        for r in regions:
            out.write(struct.pack("<IIQQQQQQ", 1, 7, off, 0, r["guest_physical_start"], r["size"], r["size"], 4096))
            off += r["size"]
        out.write(note)
        out.seek(load_off)
        for r in regions:
            ram.seek(r["file_offset"])
            left = r["size"]
            while left:
                chunk = ram.read(min(left, 64 << 20))
                if not chunk:
                    break
                out.write(chunk)
                left -= len(chunk)


def main():
    snap, vmlinux, info_path = sys.argv[1:4]
    manifest = json.load(open(os.path.join(snap, "manifest.json")))
    regions = manifest["memory_layout"]
    t0 = time.monotonic()
    core = tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="kscope-drgn-", suffix=".core", delete=False)
    core.close()
    try:
        write_core(core.name, regions, os.path.join(snap, manifest["ram"]), open(info_path, "rb").read())
        t1 = time.monotonic()
        import drgn
        from drgn.helpers.linux.mm import PageReserved, PageSlab, for_each_valid_pfn_and_page

        prog = drgn.Program()
        prog.set_core_dump(core.name)
        prog.load_debug_info([vmlinux])
        prog.type("struct page")
        # drgn 0.3.0 has no PageBuddy/PageTable helpers: decode page_type as the kernel does
        # (6.1: a cleared bit below 0xf0000000; 6.12: a PGTY_ value in the top byte).
        release = prog["init_uts_ns"].name.release.string_().decode()
        major, minor = (int(x) for x in release.split(".")[:2])
        if (major, minor) >= (6, 12):
            is_buddy = lambda t: t >> 24 == 0xF0
            is_table = lambda t: t >> 24 == 0xF2
        else:
            is_buddy = lambda t: t & 0xF0000080 == 0xF0000000
            is_table = lambda t: t & 0xF0000200 == 0xF0000000
        t2 = time.monotonic()
        counts = {}
        skip_until = 0
        anon_bit = 1
        for pfn, page in for_each_valid_pfn_and_page(prog):
            try:
                if pfn < skip_until:
                    continue
                page_type = page.page_type.value_()
                if is_buddy(page_type):
                    order = page.private.value_()
                    skip_until = pfn + (1 << order)
                    counts["free"] = counts.get("free", 0) + (1 << order)
                    continue
                if PageSlab(page):
                    c = "kernel-heap"
                elif is_table(page_type):
                    c = "page-table"
                else:
                    mapping = page.mapping.value_()
                    if mapping & anon_bit:
                        c = "user-data"
                    elif mapping:
                        c = "page-cache"
                    elif PageReserved(page):
                        c = "reserved"
                    elif page._refcount.counter.value_() == 0:
                        c = "free"
                    else:
                        c = "kernel-other"
                counts[c] = counts.get(c, 0) + 1
            except drgn.FaultError:
                counts["unknown"] = counts.get("unknown", 0) + 1
        t3 = time.monotonic()
    finally:
        os.unlink(core.name)
    print(json.dumps({"core_seconds": t1 - t0, "setup_seconds": t2 - t1, "walk_seconds": t3 - t2, "colors": counts}))


if __name__ == "__main__":
    main()
