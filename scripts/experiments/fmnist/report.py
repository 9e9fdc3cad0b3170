#!/usr/bin/env python3
"""Picks children for the Fashion-MNIST experiment and writes its report (stdlib only).

pick:   children spread along a nas.search result's accuracy-vs-MFLOPs front, plus the best child
        of a second search bounded to <= 100K params, each written as a nas.arch file.
report: table of inherited vs from-scratch test accuracy, Kendall tau between the children's
        inherited validation accuracy and their from-scratch test accuracy, the published numbers
        from the dataset's own README, and a gnuplot PNG of the front.
"""
import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys

PUBLISHED = ["2 Conv <100K parameters", "Google AutoML", "MobileNet", "DENSER"]
README = "/usr/share/doc/dataset-fashion-mnist/README.md.gz"


def load(path):
    with open(path) as f:
        return json.load(f)


def evaluated(search):
    return [c for c in search["candidates"] if c["feasible"] and c["evaluated"]]


def pick(args):
    s = load(args.search)
    front = [s["candidates"][p["index"]] for p in s["pareto"]]
    chosen = []
    n = max(1, args.count - 1)
    if len(front) <= n:
        chosen = list(front)
    else:
        for i in range(n):  # evenly spread over the front, both ends included
            chosen.append(front[round(i * (len(front) - 1) / (n - 1)) if n > 1 else -1])
    rest = sorted((c for c in evaluated(s) if c not in chosen), key=lambda c: -c["metrics"]["val_acc"])
    while len(chosen) < n and rest:
        chosen.append(rest.pop(0))
    small = load(args.small)
    if small.get("best"):
        chosen.append(small["best"])
    seen, files = set(), []
    for c in sorted(chosen, key=lambda c: -c["mflops"]):
        if c["hash"] in seen:
            continue
        seen.add(c["hash"])
        path = os.path.join(args.out, c["hash"] + ".json")
        with open(path, "w") as f:
            json.dump(c["arch"], f, indent=2, sort_keys=True)
        files.append(path)
    # Largest first: the from-scratch runs go to parallel jobs in this order, and longest-first
    # keeps the jobs busy until the end (a large child started last would run alone).
    with open(os.path.join(args.out, "order.txt"), "w") as f:
        f.write("".join(p + "\n" for p in files))
    print("picked %d children" % len(seen), file=sys.stderr)


def kendall_tau(x, y):
    n, s = len(x), 0
    for i in range(n):
        for j in range(i + 1, n):
            a = (x[i] > x[j]) - (x[i] < x[j])
            b = (y[i] > y[j]) - (y[i] < y[j])
            s += a * b
    pairs = n * (n - 1) / 2
    return s / pairs if pairs else float("nan")


def published():
    rows = []
    try:
        with gzip.open(README, "rt", encoding="utf-8") as f:
            for line in f:
                cells = [c.strip() for c in line.split("|")]
                if len(cells) > 4 and cells[1] in PUBLISHED:
                    rows.append((cells[1], cells[2], cells[3]))
    except OSError:
        pass
    return rows


def plot(dirname, search, children):
    if not shutil.which("gnuplot"):
        return None
    pts = os.path.join(dirname, "front.dat")
    with open(pts, "w") as f:
        for c in evaluated(search):
            f.write("%f %f\n" % (c["mflops"], 100 * c["metrics"]["val_acc"]))
        f.write("\n\n")
        for p in search["pareto"]:
            f.write("%f %f\n" % (p["mflops"], 100 * p["val_acc"]))
        f.write("\n\n")
        for c in children:
            f.write("%f %f\n" % (c["mflops"], 100 * c["inherited"]))
    png = os.path.join(dirname, "front.png")
    script = (
        "set terminal pngcairo size 900,600; set output '%s';"
        "set xlabel 'MFLOPs'; set ylabel 'accuracy (%%)'; set key bottom right; set grid;"
        "plot '%s' index 0 with points pt 7 ps 0.6 lc rgb '#999999' title 'candidates (val)',"
        " '' index 1 with linespoints pt 7 lc rgb '#1f77b4' title 'Pareto front (val)',"
        " '' index 2 with points pt 5 ps 1.3 lc rgb '#d62728' title 'sliced children (test)'"
    ) % (png, pts)
    r = subprocess.run(["gnuplot", "-e", script], capture_output=True, text=True)
    if r.returncode != 0:  # pngcairo missing in gnuplot-nox: fall back to the plain png terminal
        r = subprocess.run(["gnuplot", "-e", script.replace("pngcairo", "png")], capture_output=True, text=True)
    return png if r.returncode == 0 else None


def report(args):
    search = load(args.search)
    val = {c["hash"]: c["metrics"]["val_acc"] for c in evaluated(search)}
    small_path = os.path.join(args.dir, "search-100k.json")
    if os.path.exists(small_path):
        for c in evaluated(load(small_path)):
            val.setdefault(c["hash"], c["metrics"]["val_acc"])
    cdir = os.path.join(args.dir, "children")
    children = []
    for name in sorted(os.listdir(cdir)):
        if not name.endswith(".inherited.bench.json"):
            continue
        h = name.split(".")[0]
        inh = load(os.path.join(cdir, name))
        scr = load(os.path.join(cdir, h + ".scratch.bench.json"))
        children.append({
            "hash": h, "mflops": inh["model"]["mflops"], "params": inh["model"]["params"],
            "latency": inh["latency"]["median_ms"], "inherited": inh["accuracy"]["top1"],
            "scratch": scr["accuracy"]["top1"], "val": val.get(h, float("nan")),
        })
    children.sort(key=lambda c: c["mflops"])
    tau = kendall_tau([c["val"] for c in children], [c["scratch"] for c in children])
    png = plot(args.dir, search, children)
    out = ["# Fashion-MNIST experiment", "", "Budget: " + args.budget, "",
           "| arch hash | MFLOPs | params | CPU latency ms (batch 1, 1 thread) | inherited val acc | "
           "inherited test acc | from-scratch test acc | inherited - scratch |",
           "|---|---|---|---|---|---|---|---|"]
    for c in children:
        out.append("| %s | %.2f | %d | %.3f | %.2f%% | %.2f%% | %.2f%% | %+.2f pt |" % (
            c["hash"], c["mflops"], c["params"], c["latency"], 100 * c["val"], 100 * c["inherited"],
            100 * c["scratch"], 100 * (c["inherited"] - c["scratch"])))
    out += ["", "Kendall tau (inherited validation accuracy vs from-scratch test accuracy, %d children): %.3f"
            % (len(children), tau), ""]
    pub = published()
    if pub:
        out += ["Published Fashion-MNIST results (the dataset's README benchmark table, untested by its authors):", "",
                "| model | preprocessing | test accuracy |", "|---|---|---|"]
        out += ["| %s | %s | %s |" % r for r in pub]
        out.append("")
    if png:
        out += ["Plot: " + os.path.relpath(png, os.path.dirname(os.path.abspath(args.out))), ""]
    with open(args.out + ".tmp", "w") as f:
        f.write("\n".join(out))
    os.replace(args.out + ".tmp", args.out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pick")
    p.add_argument("--search", required=True)
    p.add_argument("--small", required=True)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--dir", required=True)
    r.add_argument("--search", required=True)
    r.add_argument("--budget", default="")
    r.add_argument("--out", required=True)
    a = ap.parse_args()
    pick(a) if a.cmd == "pick" else report(a)


if __name__ == "__main__":
    main()
