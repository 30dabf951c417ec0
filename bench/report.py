"""Print a pytest-benchmark JSON file as Markdown tables.

Usage: python bench/report.py bench/results.json [--stat min|median]

One row per case, operation and implementation, fastest first within a group, with GFLOP/s and
the ratio to PyTorch (PyTorch's time / this time: above 1 means faster than PyTorch) and to the
fastest scipy.signal method where the case has one; the fastest row of each group is in bold.
Then the geometric mean of fastconv-auto's ratio to PyTorch per operation, and the memory table.
"""

import argparse
import json
import math
import sys

OPS = ("forward", "grad_input", "grad_kernel")
DASH = "–"


def entry(bench, stat):
    info = bench.get("extra_info", {})
    params = bench.get("params") or {}
    seconds = bench["stats"][stat]
    n_flops = info.get("flops")
    return {
        "case": info.get("case") or params.get("name"),
        "op": info.get("op") or params.get("op"),
        "impl": info.get("impl") or params.get("impl") or bench["name"],
        "chosen": info.get("chosen"),
        "seconds": seconds,
        "gflops": n_flops / seconds / 1e9 if n_flops else info.get("gflops"),
        "info": info,
    }


def ratio(anchor, seconds):
    return f"{anchor / seconds:.2f}" if anchor else DASH


def conv_table(groups, stat):
    lines = [
        f"| case | op | implementation | {stat} ms | GFLOP/s | vs PyTorch | vs scipy |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    auto_ratios = {op: [] for op in OPS}
    for (case, op), rows in groups.items():
        rows.sort(key=lambda r: r["seconds"])
        torch_s = next((r["seconds"] for r in rows if r["impl"] == "torch"), None)
        scipy_s = min((r["seconds"] for r in rows if r["impl"].startswith("scipy-")), default=None)
        for i, r in enumerate(rows):
            impl = r["impl"] + (f" ({r['chosen']})" if r["chosen"] else "")
            if i == 0 and len(rows) > 1:
                impl = f"**{impl}**"
            gflops = f"{r['gflops']:.1f}" if r["gflops"] else DASH
            lines.append(
                f"| {case} | {op} | {impl} | {r['seconds'] * 1e3:.3f} | {gflops} "
                f"| {ratio(torch_s, r['seconds'])} | {ratio(scipy_s, r['seconds'])} |"
            )
            if r["impl"] == "fastconv-auto" and torch_s and op in auto_ratios:
                auto_ratios[op].append(torch_s / r["seconds"])
    summary = [
        f"- {op}: fastconv-auto vs PyTorch, geometric mean over {len(v)} cases: "
        f"{math.exp(sum(map(math.log, v)) / len(v)):.2f}"
        for op, v in auto_ratios.items()
        if v
    ]
    return lines + ([""] + summary if summary else [])


def _mib(value):
    return f"{value:.2f}" if isinstance(value, (int, float)) else DASH


def memory_table(rows):
    lines = [
        "| case | implementation | peak MiB (tracemalloc) | output MiB | workspace MiB "
        "| RSS peak MiB | full column matrix MiB | workspace limit MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        i = r["info"]
        limit = i.get("workspace_limit")  # bytes, from fastconv.get_workspace_limit()
        lines.append(
            f"| {r['case']} | {r['impl']} | {_mib(i.get('peak_mib'))} | {_mib(i.get('output_mib'))} "
            f"| {_mib(i.get('workspace_mib'))} | {_mib(i.get('rss_peak_mib'))} "
            f"| {_mib(i.get('full_columns_mib'))} | {_mib(limit / 2**20 if limit else None)} |"
        )
    return lines


def machine_lines(data):
    machine = data.get("machine_info", {})
    env = machine.get("fastconv_bench", {})
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    blas = ", ".join(
        f"{b.get('internal_api')} {b.get('version') or ''} ({b.get('prefix')}, {b.get('num_threads')} threads)"
        for b in env.get("blas") or []
    )
    commit = data.get("commit_info", {})
    fields = [
        ("CPU", env.get("cpu_model") or machine.get("cpu", {}).get("brand_raw")),
        ("cores", f"{env.get('logical_cpus')} logical, {env.get('usable_cpus')} usable" if env else None),
        ("threads", env.get("threads")),
        ("BLAS / OpenMP", blas),
        ("versions", versions + (f", Python {env['python']}" if env.get("python") else "")),
        ("commit", f"{commit.get('id', '')[:10]}{' (dirty)' if commit.get('dirty') else ''}" if commit else None),
        ("date", data.get("datetime")),
        ("quick mode", env.get("quick")),
    ]
    return [f"- {name}: {value}" for name, value in fields if value not in (None, "")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--stat", choices=("min", "median"), default="min")
    args = parser.parse_args(argv)
    with open(args.json_file) as f:
        data = json.load(f)
    groups, memory = {}, []
    for bench in data.get("benchmarks", []):
        r = entry(bench, args.stat)
        if "peak_mib" in r["info"]:
            memory.append(r)
        else:
            groups.setdefault((r["case"], r["op"]), []).append(r)
    case_order = {}
    for case, _ in groups:
        case_order.setdefault(case, len(case_order))
    op_rank = {op: i for i, op in enumerate(OPS)}
    ordered = dict(
        sorted(groups.items(), key=lambda kv: (case_order[kv[0][0]], op_rank.get(kv[0][1], len(OPS))))
    )
    out = machine_lines(data)
    out += [""] + conv_table(ordered, args.stat)
    if memory:
        out += ["", "Memory (im2col forward):", ""] + memory_table(memory)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
