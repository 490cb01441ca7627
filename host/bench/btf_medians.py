#!/usr/bin/env python3
"""Medians of whole kscope commands in fresh processes, two binaries alternated run by run.

  btf_medians.py --before OLD_KSCOPE --after NEW_KSCOPE --runs N layout RAW_BTF
      kscope layout extract RAW_BTF --types-only -o FILE, both binaries, and
      pahole -F btf -C <the same 18 structs> RAW_BTF, in the same run.
  btf_medians.py --before OLD --after NEW --runs N color SNAPSHOT_DIR [--sparse-source RAM]
      kscope color SNAPSHOT_DIR -o FILE with the default options, --no-digest, --no-hints and
      both; with --sparse-source the snapshot's RAM file is copied afresh (cp --sparse=always)
      before every run, so that a run which fills the file's holes does not change the next.

Wall time, CPU time (user + system) and peak RSS come from wait4 of each child; this parent
stays small, so the peak RSS is the child's own. Set KSCOPE_CACHE to an empty directory (and
give a snapshot whose manifest names an empty kernel directory) to color with no debug package.
"""
import argparse
import os
import statistics
import subprocess
import time

STRUCTS = ("page,folio,address_space,inode,super_block,file,list_head,hlist_node,mm_struct,task_struct,"
           "vm_area_struct,maple_tree,zone,free_area,pglist_data,mem_section,xarray,xa_node")


def run(cmd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("what", choices=["layout", "color"])
    ap.add_argument("path")
    ap.add_argument("--sparse-source")
    a = ap.parse_args()
    out = f"/dev/shm/btf-medians-{os.getpid()}"
    results = {}
    for _ in range(a.runs):
        if a.what == "layout":
            for name, cmd in [
                ("before", [a.before, "layout", "extract", a.path, "--types-only", "-o", out]),
                ("after", [a.after, "layout", "extract", a.path, "--types-only", "-o", out]),
                ("pahole", ["pahole", "-F", "btf", "-C", STRUCTS, a.path]),
            ]:
                results.setdefault(name, []).append(run(cmd))
        else:
            for opts in [[], ["--no-digest"], ["--no-hints"], ["--no-hints", "--no-digest"]]:
                for name, binary in [("before", a.before), ("after", a.after)]:
                    if a.sparse_source:
                        subprocess.run(["cp", "--sparse=always", a.sparse_source, a.path + "/ram"], check=True)
                    key = f"{name} {' '.join(opts) or '(default options)'}"
                    results.setdefault(key, []).append(run([binary, "color", a.path, "-o", out] + opts))
    try:
        os.unlink(out)
    except OSError:
        pass
    for key, rs in results.items():
        wall = sorted(r[0] for r in rs)
        cpu = sorted(r[1] for r in rs)
        rss = sorted(r[2] for r in rs)
        print(f"{key:34s} wall median {statistics.median(wall):.3f} s ({wall[0]:.3f}-{wall[-1]:.3f}),"
              f" CPU median {statistics.median(cpu) * 1000:.0f} ms,"
              f" peak RSS median {statistics.median(rss):.1f} MiB ({rss[0]:.1f}-{rss[-1]:.1f}), {len(rs)} runs")
    with open("/proc/loadavg") as f:
        print("load average", " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
