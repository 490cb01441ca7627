#!/usr/bin/env python3
"""Colors every page frame of a kscope snapshot with drgn, for kscope-bench's comparison column.

drgn reads ELF cores, so the snapshot's RAM is first wrapped in one (PT_LOAD per RAM region,
PT_NOTE with the kernel's vmcoreinfo, which kscope-bench passes in a file); that copy is not
timed. Then drgn loads the vmlinux's debug info (timed once: "setup"), walks every struct page
once untimed (so both sides read warm memory, as kscope-bench's warm-up run does) and then RUNS
timed walks, each classifying every frame with the same rules as kscope's struct page pass
(Sources/KscopeAnalyzer/PageStruct.swift, in the same order):

  compound tail -> its head's verdict; buddy head -> its whole 2^order block free (order above
  10 or a misaligned block -> unknown); offline, guard or hwpoison -> reserved; the zero page ->
  zero; slab -> kernel-heap; page table -> page-table; PG_reserved inside the kernel image
  (_text.._etext code; rodata, data, bss data) -> kernel-code / kernel-data; anon or KSM
  mapping -> user-data; movable non-LRU mapping -> kernel-other; other mapping -> page-cache;
  PG_reserved -> reserved; reference count 0 -> free; the rest -> kernel-other.

What it does not do, and kscope's struct page pass does not count either: page-cache
identities (mapping -> inode), the process walk, page flags. Frames without a struct page are
not visited (kscope colors them reserved without reading anything).

Prints one JSON object: core_seconds, setup_seconds, walk_seconds (one per timed run),
walk_median_seconds, colors (of the last run).

usage: drgn_color.py SNAPSHOT_DIR VMLINUX VMCOREINFO_FILE [RUNS]
"""
import json
import os
import statistics
import struct
import sys
import tempfile
import time

START_KERNEL_MAP = 0xFFFFFFFF80000000


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


class Rules:
    """kscope's struct page rules over drgn objects."""

    def __init__(self, prog, drgn):
        self.prog = prog
        self.drgn = drgn
        release = prog["init_uts_ns"].name.release.string_().decode()
        major, minor = (int(x) for x in release.split(".")[:2])

        def const(name):
            try:
                return prog[name].value_()
            except (KeyError, LookupError):
                return None

        if (major, minor) >= (6, 12):
            # DWARF's enum pagetype: the top byte of page_type is a PGTY_ value.
            vals = {k: const("PGTY_" + k) for k in ("buddy", "offline", "table", "guard", "slab")}
            self.has_type = lambda t, k: vals[k] is not None and t >> 24 == vals[k]
        else:
            # 6.1: a type is set when its bit is clear under PAGE_TYPE_BASE (kscope's rule enum).
            bits = {"buddy": 0x80, "offline": 0x100, "table": 0x200, "guard": 0x400}
            self.has_type = lambda t, k: k in bits and t & (0xF0000000 | bits[k]) == 0xF0000000

        def bit(name):
            v = const(name)
            return 0 if v is None else 1 << v

        self.pg_reserved = bit("PG_reserved")
        self.pg_slab = bit("PG_slab")
        self.pg_hwpoison = bit("PG_hwpoison")
        # phys_base is an assembler symbol without a type: read it as the u64 it is.
        phys_base = prog.read_u64(prog.symbol("phys_base").address)
        if phys_base >= 1 << 63:
            phys_base -= 1 << 64

        def frame(sym):
            return (prog.symbol(sym).address - START_KERNEL_MAP + phys_base) // 4096

        def frames(a, b):
            first = frame(a)
            n = (prog.symbol(b).address - prog.symbol(a).address + 4095) // 4096
            return range(first, first + n)

        self.image = [
            (frames("_text", "_etext"), "kernel-code"),
            (frames("__start_rodata", "__end_rodata"), "kernel-data"),
            (frames("_sdata", "_edata"), "kernel-data"),
            (frames("__bss_start", "__bss_stop"), "kernel-data"),
        ]
        self.zero_frame = frame("empty_zero_page")
        self.vmemmap = prog["vmemmap_base"].value_()
        self.page_size = prog.type("struct page").size

    def verdict(self, pfn, page):
        """(color, block frames) for one struct page; a tail returns ('tail', head pfn)."""
        head = page.compound_head.value_()
        if head & 1:
            return "tail", ((head & ~1) - self.vmemmap) // self.page_size
        t = page.page_type.value_()
        if self.has_type(t, "buddy"):
            order = page.private.value_()
            if order > 10 or pfn & ((1 << order) - 1):
                return "unknown", 1
            return "buddy", 1 << order
        flags = page.flags.value_()
        if self.has_type(t, "offline") or self.has_type(t, "guard") or flags & self.pg_hwpoison:
            return "reserved", 1
        if pfn == self.zero_frame:
            return "zero", 1
        if flags & self.pg_slab or self.has_type(t, "slab"):
            return "kernel-heap", 1
        if self.has_type(t, "table"):
            return "page-table", 1
        reserved = flags & self.pg_reserved
        if reserved:
            for frames, color in self.image:
                if pfn in frames:
                    return color, 1
        mapping = page.mapping.value_()
        if mapping & 1:
            return "user-data", 1
        if mapping & 3 == 2:
            return "kernel-other", 1
        if mapping:
            return "page-cache", 1
        if reserved:
            return "reserved", 1
        if page._refcount.counter.value_() == 0:
            return "free", 1
        return "kernel-other", 1

    def walk(self, for_each_valid_pfn_and_page):
        counts = {}
        heads = {}
        skip_until = 0
        for pfn, page in for_each_valid_pfn_and_page(self.prog):
            if pfn < skip_until:
                continue
            try:
                color, n = self.verdict(pfn, page)
                if color == "tail":
                    # As kscope: the head must come before its tail and be a page seen in
                    # this walk; otherwise the frame is unknown.
                    head = n
                    color = heads.get(head, "unknown") if 0 <= pfn - head < (1 << 18) and head < pfn else "unknown"
                    n = 1
                elif color == "buddy":
                    color = "free"
                    skip_until = pfn + n
                else:
                    heads[pfn] = color
            except self.drgn.FaultError:
                color, n = "unknown", 1
            counts[color] = counts.get(color, 0) + n
        return counts


def main():
    snap, vmlinux, info_path = sys.argv[1:4]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    manifest = json.load(open(os.path.join(snap, "manifest.json")))
    regions = manifest["memory_layout"]
    t0 = time.monotonic()
    core = tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="kscope-drgn-", suffix=".core", delete=False)
    core.close()
    try:
        write_core(core.name, regions, os.path.join(snap, manifest["ram"]), open(info_path, "rb").read())
        t1 = time.monotonic()
        import drgn
        from drgn.helpers.linux.mm import for_each_valid_pfn_and_page

        prog = drgn.Program()
        prog.set_core_dump(core.name)
        prog.load_debug_info([vmlinux])
        prog.type("struct page")
        rules = Rules(prog, drgn)
        t2 = time.monotonic()
        rules.walk(for_each_valid_pfn_and_page)  # warm-up, untimed
        walks = []
        counts = {}
        for _ in range(runs):
            s = time.monotonic()
            counts = rules.walk(for_each_valid_pfn_and_page)
            walks.append(time.monotonic() - s)
    finally:
        os.unlink(core.name)
    print(json.dumps({
        "core_seconds": t1 - t0, "setup_seconds": t2 - t1, "walk_seconds": walks,
        "walk_median_seconds": statistics.median(walks), "colors": counts,
    }))


if __name__ == "__main__":
    main()
