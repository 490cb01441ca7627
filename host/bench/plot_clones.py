#!/usr/bin/env python3
"""Plots of `kscope bench clones`' report.json (matplotlib): start time, throughput, faults and
waste, footprint, per kernel/workload/setting. Usage: plot_clones.py REPORT.json OUTDIR"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    report = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    groups = {}
    for r in report["rows"]:
        groups.setdefault((r["kernel"], r["workload"], r["setting"]), []).append(r)
    for (kernel, workload, setting), rows in groups.items():
        names = [r["policy"] for r in rows]
        web = workload == "web"
        panels = [
            ("to vCPU running (ms)", [r["to_vcpu_ms"] for r in rows]),
            ("requests/s" if web else "one round of queries (s)", [r["throughput"] for r in rows]),
            ("demand faults", [r["demand_faults"] for r in rows]),
            ("waste (pages fetched, never touched)", [r["waste"] for r in rows]),
            ("footprint (MiB)", [r["footprint_mi_b"] for r in rows]),
        ]
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
        for ax, (title, values) in zip(axes, panels):
            ax.bar(range(len(names)), values, color="#4878a8")
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=40, ha="right", fontsize=8)
            ax.set_title(title, fontsize=9)
        fig.suptitle(f"{kernel} {workload}, {setting}: {rows[0]['sizes']}", fontsize=10)
        fig.tight_layout()
        slug = f"{kernel}-{workload}-{setting.split()[0]}".replace("/", "_")
        fig.savefig(f"{out}/clones-{slug}.png", dpi=110)
        plt.close(fig)
    if report.get("memory"):
        m = report["memory"]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        labels = [f"{x['kernel']} {x['workload']}" for x in m]
        ax.bar(range(len(m)), [x["cache_mi_b"] + x["private_mi_b"] for x in m], label="clones (shared cache + private)")
        ax.plot(range(len(m)), [x["bound_mi_b"] - x["parent_ram_mi_b"] for x in m], "r_", markersize=30, label="K x 25% of the parent")
        ax.set_xticks(range(len(m)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("MiB")
        ax.set_title(f"host memory of {m[0]['clones']} clones", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(f"{out}/clones-memory.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
