#!/usr/bin/env python3
"""The Fashion-MNIST experiment's children and results (stdlib only; gnuplot for the plots).

pick:   children spread along a nas.search result's accuracy-vs-MFLOPs front, the max and min child
        (--ends), and the best child of a second search bounded to <= 100K params, as nas.arch files.
json:   the results as one JSON document (kind nas.results): a row per child (inherited, fine-tuned and
        from-scratch accuracy, cost, latency), Kendall tau and Spearman rho, epochs, wall times,
        commit and machine.
render: that document as Markdown (--out FILE), or into the section of FILE between its markers
        (--into FILE); a malformed document is refused with one line naming the file and field (exit 2).
plots:  the accuracy-vs-MFLOPs front and the training curves (each sandwich child's loss, the max
        and min child's validation accuracy per epoch) as PNGs.
"""
import argparse
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

PUBLISHED = ["2 Conv <100K parameters", "Google AutoML", "MobileNet", "DENSER"]
README = "/usr/share/doc/dataset-fashion-mnist/README.md.gz"
KIND, VERSION = "nas.results", 1
BEGIN, END = "<!-- begin: rendered from docs/results/fmnist.json -->", "<!-- end: rendered from docs/results/fmnist.json -->"
SMALL_PARAMS = 100000
# The targets (issue 19), checked by render against the document's own figures.
TARGET_GAP_PT, TARGET_MAX, TARGET_SMALL, TARGET_TAU, TARGET_TAU_CHILDREN, TARGET_GAP_CHILDREN = 0.3, 0.945, 0.930, 0.7, 8, 5


def load(path):
    with open(path) as f:
        return json.load(f)


def evaluated(search):
    return [c for c in search["candidates"] if c["feasible"] and c["evaluated"]]


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------------------------------- pick

def pick(args):
    """The max and min child (--ends), the best child under 100K params, and children spread evenly
    along the front (both of its ends included) until there are --count, largest first."""
    s = load(args.search)
    ends = {os.path.splitext(os.path.basename(p))[0]: load(p) for p in args.ends}
    small = load(args.small).get("best")
    taken = list(ends.values()) + ([small["arch"]] if small else [])
    front = [s["candidates"][p["index"]] for p in s["pareto"]]
    front = [c for c in front if c["arch"] not in taken]
    n = max(0, args.count - len(taken))
    chosen = [front[round(i * (len(front) - 1) / (n - 1)) if n > 1 else -1] for i in range(n)] if len(front) > n else front
    chosen = list({c["hash"]: c for c in chosen}.values())
    rest = sorted((c for c in evaluated(s) if c not in chosen and c["arch"] not in taken),
                  key=lambda c: -c["metrics"]["val_acc"])
    while len(chosen) < n and rest:
        chosen.append(rest.pop(0))
    files = []

    def add(name, arch):
        path = os.path.join(args.out, name + ".json")
        with open(path, "w") as f:
            json.dump(arch, f, indent=2, sort_keys=True)
        files.append(path)

    # Largest first: the from-scratch runs go to parallel jobs in this order, and longest-first
    # keeps the jobs busy until the end (a large child started last would run alone).
    if "max" in ends:
        add("max", ends["max"])
    for c in sorted(chosen, key=lambda c: -c["mflops"]):
        add(c["hash"], c["arch"])
    if small:
        add("small-" + small["hash"], small["arch"])
    for name, arch in ends.items():
        if name != "max":
            add(name, arch)
    write_atomic(os.path.join(args.out, "order.txt"), "".join(p + "\n" for p in files))
    print("picked %d children" % len(files), file=sys.stderr)


# ---------------------------------------------------------------------------------------- json

def kendall_tau(x, y):
    """Kendall's tau-b: concordant minus discordant pairs over the pairs untied in each variable."""
    s = tied_x = tied_y = pairs = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            a = (x[i] > x[j]) - (x[i] < x[j])
            b = (y[i] > y[j]) - (y[i] < y[j])
            s += a * b
            pairs += 1
            tied_x += a == 0
            tied_y += b == 0
    denominator = ((pairs - tied_x) * (pairs - tied_y)) ** 0.5
    return s / denominator if denominator else None


def ranks(v):  # average ranks, ties sharing theirs
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def spearman_rho(x, y):
    if len(x) < 2:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else None


def training_seconds(metrics_path):
    """Training time of a run over all its sittings: its last elapsed_s (which counts every sitting up
    to the checkpoint it resumed from; the time after a stopped sitting's last checkpoint is lost)."""
    if not os.path.exists(metrics_path):
        return None
    times = [json.loads(line).get("elapsed_s") for line in open(metrics_path)]
    times = [t for t in times if t is not None]
    return round(max(times), 1) if times else None


def curves(metrics_path):
    out = {"step": [], "loss_max": [], "loss_min": [], "loss_random": [], "epoch": [], "val_acc_max": [],
           "val_acc_min": []}
    if not os.path.exists(metrics_path):
        return out
    for line in open(metrics_path):
        m = json.loads(line)
        if "loss_max" in m:
            for k in ("step", "loss_max", "loss_min", "loss_random"):
                out[k].append(m[k])
        if "val_acc_max" in m:
            out["epoch"].append(m["epochs_done"])
            out["val_acc_max"].append(m["val_acc_max"])
            out["val_acc_min"].append(m["val_acc_min"])
    return out


def published():
    rows = []
    try:
        with gzip.open(README, "rt", encoding="utf-8") as f:
            for line in f:
                cells = [c.strip() for c in line.split("|")]
                if len(cells) > 4 and cells[1] in PUBLISHED:
                    rows.append({"model": cells[1], "preprocessing": cells[2], "test_accuracy": cells[3]})
    except OSError:
        pass
    return rows


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count()}


def commit(root):
    r = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "unknown"


def results(args):
    d = args.dir
    val = {}
    for name in ("search.json", "search-100k.json"):
        if os.path.exists(os.path.join(d, name)):
            for c in evaluated(load(os.path.join(d, name))):
                val.setdefault(c["hash"], c["metrics"]["val_acc"])
    children, wall_scratch, wall_finetune = [], {}, {}
    for path in open(os.path.join(d, "children", "order.txt")).read().split():
        stem = os.path.splitext(path)[0]
        name = os.path.basename(stem)
        inh = load(stem + ".inherited.bench.json")
        scr = load(stem + ".scratch.bench.json")
        fine = load(stem + ".finetune.bench.json") if os.path.exists(stem + ".finetune.bench.json") else None
        h = inh["model"]["hash"]
        tags = [name] if name in ("max", "min") else ["best <= 100K params"] if name.startswith("small-") else []
        children.append({
            "name": name, "hash": h, "tags": tags, "mflops": inh["model"]["mflops"], "params": inh["model"]["params"],
            "latency_ms": inh["latency"]["median_ms"], "inherited_val_acc": val.get(h),
            "inherited_test_acc": inh["accuracy"]["top1"],
            "finetuned_test_acc": fine["accuracy"]["top1"] if fine else None,
            "scratch_test_acc": scr["accuracy"]["top1"]})
        wall_scratch[h] = training_seconds(stem + ".scratch/metrics.jsonl")
        if fine:
            wall_finetune[h] = training_seconds(stem + ".finetune/metrics.jsonl")
    children.sort(key=lambda c: c["mflops"])
    ranked = [c for c in children if c["inherited_val_acc"] is not None]
    x, y = [c["inherited_val_acc"] for c in ranked], [c["scratch_test_acc"] for c in ranked]
    searches = {}
    for key, name in (("search", "search.json"), ("search_100k", "search-100k.json")):
        if os.path.exists(os.path.join(d, name)):
            searches[key] = load(os.path.join(d, name))["timings"]["total_seconds"]
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    doc = {
        "kind": KIND, "schema_version": VERSION, "experiment": "fmnist", "command": args.command,
        "budget": args.budget, "epochs": args.epochs, "scratch_epochs": args.scratch_epochs,
        "finetune_epochs": args.finetune_epochs, "train_limit": args.train_limit, "search_budget": args.search_budget,
        "space": os.path.relpath(args.space, root), "train": os.path.relpath(args.train, root),
        "commit": commit(root), "machine": machine(), "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "wall_s": {"supernet": training_seconds(os.path.join(d, "supernet", "metrics.jsonl")), **searches,
                   "scratch": wall_scratch, "finetune": wall_finetune},
        "kendall_tau": kendall_tau(x, y), "spearman_rho": spearman_rho(x, y), "rank_children": len(ranked),
        "children": children, "curves": curves(os.path.join(d, "supernet", "metrics.jsonl")),
        "published": published(),
    }
    write_atomic(args.out, json.dumps(doc, indent=1, sort_keys=True) + "\n")


# -------------------------------------------------------------------------------------- render

class Malformed(Exception):
    pass


def need(doc, key, kind, where="", optional=False):
    """doc[key], checked to be of `kind` ('number', 'string', 'list', 'object', 'int'); None when
    optional and null or absent."""
    path = where + key
    if key not in doc or doc[key] is None:
        if optional:
            return None
        raise Malformed("%s: missing (expected %s)" % (path, kind))
    v = doc[key]
    ok = {"number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
          "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "string": lambda v: isinstance(v, str), "list": lambda v: isinstance(v, list),
          "object": lambda v: isinstance(v, dict)}[kind](v)
    if not ok:
        raise Malformed("%s: expected %s, found %s" % (path, "an integer" if kind == "int" else "a " + kind,
                                                       json.dumps(v)[:40]))
    return v


def check(doc):
    if not isinstance(doc, dict):
        raise Malformed("the document: expected an object")
    kind = need(doc, "kind", "string")
    if kind != KIND:
        raise Malformed("kind: expected %s, found %s" % (KIND, json.dumps(kind)))
    if need(doc, "schema_version", "int") > VERSION:
        raise Malformed("schema_version: expected at most %d, found %d" % (VERSION, doc["schema_version"]))
    for k in ("command", "budget", "commit", "date", "space", "train"):
        need(doc, k, "string")
    for k in ("epochs", "scratch_epochs", "finetune_epochs"):
        need(doc, k, "int")
    need(doc, "machine", "object")
    need(doc, "rank_children", "int")
    for k, v in need(doc, "wall_s", "object").items():
        for name, seconds in (v.items() if isinstance(v, dict) else [(None, v)]):
            where = "wall_s.%s%s" % (k, "" if name is None else "." + name)
            if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
                raise Malformed("%s: expected seconds (a number or null), found %s" % (where, json.dumps(seconds)[:40]))
    for k in ("kendall_tau", "spearman_rho"):
        need(doc, k, "number", optional=True)
    rows = need(doc, "children", "list")
    if not rows:
        raise Malformed("children: expected at least one child")
    for i, c in enumerate(rows):
        where = "children[%d]." % i
        if not isinstance(c, dict):
            raise Malformed("children[%d]: expected an object" % i)
        for k in ("name", "hash"):
            need(c, k, "string", where)
        if not all(isinstance(tag, str) for tag in need(c, "tags", "list", where)):
            raise Malformed("%stags: expected a list of strings" % where)
        need(c, "params", "int", where)
        for k in ("mflops", "latency_ms", "inherited_test_acc", "scratch_test_acc"):
            need(c, k, "number", where)
        for k in ("inherited_val_acc", "finetuned_test_acc"):
            need(c, k, "number", where, optional=True)
        for k in ("inherited_val_acc", "inherited_test_acc", "finetuned_test_acc", "scratch_test_acc"):
            if c.get(k) is not None and not 0 <= c[k] <= 1:
                raise Malformed("%s%s: expected an accuracy in [0, 1], found %s" % (where, k, c[k]))
    return doc


def pct(v):
    return "" if v is None else "%.2f%%" % (100 * v)


def targets(doc):
    rows = doc["children"]
    gaps = [100 * (c["inherited_test_acc"] - c["scratch_test_acc"]) for c in rows]
    within = sum(g >= -TARGET_GAP_PT for g in gaps)
    small = [c for c in rows if c["params"] <= SMALL_PARAMS]
    searched_small = [c for c in rows if "best <= 100K params" in c["tags"]]
    small_within = any(100 * (c["inherited_test_acc"] - c["scratch_test_acc"]) >= -TARGET_GAP_PT for c in searched_small)
    best_small = max((c["inherited_test_acc"] for c in small), default=None)
    top = [c for c in rows if c["name"] == "max"]
    tau, n = doc.get("kendall_tau"), doc.get("rank_children", len(rows))
    met = lambda ok: "**met**" if ok else "**missed**"
    out = [
        "- Within %.1f pt of its from-scratch twin, no retraining: %d of %d children (target: at least %d, "
        "the best <= 100K-param one included): %s." % (TARGET_GAP_PT, within, len(rows), TARGET_GAP_CHILDREN,
                                                 met(within >= TARGET_GAP_CHILDREN and small_within)),
        "- The max child: %s (target %.1f%%): %s." % (pct(top[0]["inherited_test_acc"]) if top else "not in the table",
                                                       100 * TARGET_MAX, met(bool(top) and top[0]["inherited_test_acc"] >= TARGET_MAX)),
        "- The best child of <= 100K params: %s (target %.1f%%): %s." % (
            pct(best_small) or "none", 100 * TARGET_SMALL, met(best_small is not None and best_small >= TARGET_SMALL)),
        "- Kendall tau: %s over %d children (target %.1f over at least %d): %s." % (
            "n/a" if tau is None else "%.3f" % tau, n, TARGET_TAU, TARGET_TAU_CHILDREN,
            met(tau is not None and tau >= TARGET_TAU and n >= TARGET_TAU_CHILDREN)),
    ]
    return out


def render_markdown(doc, images_dir):
    w = doc["wall_s"]
    hours = lambda s: "n/a" if s is None else "%.1f h" % (s / 3600) if s >= 3600 else "%.0f min" % (s / 60)
    lines = [
        "Command: `%s` (%s budget; rerun it to continue a stopped run). Commit %s, %s, %s (%s cores)." % (
            doc["command"], doc["budget"], doc["commit"], doc["date"], doc["machine"].get("cpu", "?"),
            doc["machine"].get("cores", "?")),
        "Space `%s`, recipe `%s`: supernet %d epochs, from-scratch twins %d epochs%s. Supernet training %s; "
        "searches %s." % (doc["space"], doc["train"], doc["epochs"], doc["scratch_epochs"],
                           ", fine-tunes %d epochs" % doc["finetune_epochs"] if doc["finetune_epochs"] else "",
                           hours(w.get("supernet")), " + ".join("%.0f s" % v for k, v in sorted(w.items())
                                                               if k.startswith("search"))),
        "",
        "| child | arch hash | MFLOPs | params | latency ms (batch 1, 1 thread) | inherited, no retraining: "
        "val | inherited, no retraining: test | fine-tuned: test | from scratch: test | inherited - scratch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["children"]:
        lines.append("| %s | %s | %.2f | %s | %.3f | %s | %s | %s | %s | %+.2f pt |" % (
            ", ".join(c["tags"]) or "front", c["hash"], c["mflops"], format(c["params"], ","), c["latency_ms"],
            pct(c["inherited_val_acc"]), pct(c["inherited_test_acc"]), pct(c["finetuned_test_acc"]) or "-",
            pct(c["scratch_test_acc"]), 100 * (c["inherited_test_acc"] - c["scratch_test_acc"])))
    tau, rho = doc.get("kendall_tau"), doc.get("spearman_rho")
    lines += ["", "Inherited validation accuracy against from-scratch test accuracy over %d children: Kendall tau "
              "%s, Spearman rho %s." % (doc.get("rank_children", 0), "n/a" if tau is None else "%.3f" % tau,
                                         "n/a" if rho is None else "%.3f" % rho), "", "Targets (issue 19):", ""]
    lines += targets(doc)
    if doc.get("published"):
        lines += ["", "Published Fashion-MNIST results (the dataset's README benchmark table):", "",
                  "| model | preprocessing | test accuracy |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % (p["model"], p["preprocessing"], p["test_accuracy"]) for p in doc["published"]]
    if images_dir is not None:
        lines += ["", "![accuracy vs MFLOPs](%sfmnist-front.png)" % images_dir,
                  "![training curves](%sfmnist-curves.png)" % images_dir]
    return "\n".join(lines) + "\n"


def render(args):
    try:
        doc = check(load(args.json))
    except (OSError, ValueError) as e:
        fail("%s: %s" % (args.json, e))
    except Malformed as e:
        fail("%s: %s" % (args.json, e))
    if args.into:
        try:
            text = open(args.into).read()
        except OSError as e:
            fail("%s: %s" % (args.into, e.strerror))
        if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
            fail("%s: no section to render into (expected the lines %s and %s, in that order)" % (args.into, BEGIN, END))
        a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
        write_atomic(args.into, text[:a] + "\n" + render_markdown(doc, "results/") + text[b:])
    else:
        write_atomic(args.out, "# Fashion-MNIST experiment\n\n" + render_markdown(doc, "") )


def fail(message):
    print("report.py: " + message, file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------------------- plots

def gnuplot(script):
    if not shutil.which("gnuplot"):
        return False
    r = subprocess.run(["gnuplot", "-e", script], capture_output=True, text=True)
    if r.returncode != 0:  # pngcairo missing in gnuplot-nox: fall back to the plain png terminal
        r = subprocess.run(["gnuplot", "-e", script.replace("pngcairo", "png")], capture_output=True, text=True)
    return r.returncode == 0


def plots(args):
    doc = load(args.json)
    search = load(os.path.join(args.dir, "search.json"))
    pts = os.path.join(args.dir, "front.dat")
    with open(pts, "w") as f:
        for c in evaluated(search):
            f.write("%f %f\n" % (c["mflops"], 100 * c["metrics"]["val_acc"]))
        f.write("\n\n")
        for p in search["pareto"]:
            f.write("%f %f\n" % (p["mflops"], 100 * p["val_acc"]))
        f.write("\n\n")
        for c in doc["children"]:
            f.write("%f %f\n" % (c["mflops"], 100 * c["inherited_test_acc"]))
        f.write("\n\n")
        for c in doc["children"]:
            f.write("%f %f\n" % (c["mflops"], 100 * c["scratch_test_acc"]))
    gnuplot(("set terminal pngcairo size 900,600; set output '%s';"
             "set xlabel 'MFLOPs'; set ylabel 'accuracy (%%)'; set key bottom right; set grid;"
             "plot '%s' index 0 with points pt 7 ps 0.6 lc rgb '#999999' title 'candidates (inherited, val)',"
             " '' index 1 with linespoints pt 7 lc rgb '#1f77b4' title 'Pareto front (inherited, val)',"
             " '' index 2 with points pt 5 ps 1.3 lc rgb '#d62728' title 'sliced children, no retraining (test)',"
             " '' index 3 with points pt 9 ps 1.3 lc rgb '#2ca02c' title 'from scratch (test)'")
            % (os.path.join(args.out_dir, "fmnist-front.png"), pts))
    cv = doc["curves"]
    dat = os.path.join(args.dir, "curves.dat")
    with open(dat, "w") as f:
        for row in zip(cv["step"], cv["loss_max"], cv["loss_min"], cv["loss_random"]):
            f.write("%d %f %f %f\n" % row)
        f.write("\n\n")
        for row in zip(cv["epoch"], cv["val_acc_max"], cv["val_acc_min"]):
            f.write("%d %f %f\n" % (row[0], 100 * row[1], 100 * row[2]))
        if not cv["epoch"]:
            f.write("0 0 0\n")
    gnuplot(("set terminal pngcairo size 1200,500; set output '%s'; set multiplot layout 1,2; set grid;"
             "set xlabel 'step'; set ylabel 'training loss'; set key top right;"
             "plot '%s' index 0 using 1:2 with lines title 'max child (labels)', '' index 0 using 1:3 with lines"
             " title 'min child (distilled)', '' index 0 using 1:4 with lines title 'random children (distilled)';"
             "set xlabel 'epoch'; set ylabel 'validation accuracy (%%)'; set key bottom right;"
             "plot '%s' index 1 using 1:2 with linespoints title 'max child', '' index 1 using 1:3 with linespoints"
             " title 'min child'; unset multiplot")
            % (os.path.join(args.out_dir, "fmnist-curves.png"), dat, dat))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pick")
    p.add_argument("--search", required=True)
    p.add_argument("--small", required=True)
    p.add_argument("--ends", nargs="*", default=[])
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--out", required=True)
    j = sub.add_parser("json")
    j.add_argument("--dir", required=True)
    j.add_argument("--budget", required=True)
    j.add_argument("--command", required=True)
    j.add_argument("--space", required=True)
    j.add_argument("--train", required=True)
    for k in ("--epochs", "--scratch-epochs", "--finetune-epochs", "--train-limit", "--search-budget"):
        j.add_argument(k, type=int, required=True)
    j.add_argument("--out", required=True)
    r = sub.add_parser("render")
    r.add_argument("--json", required=True)
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--out")
    g.add_argument("--into")
    pl = sub.add_parser("plots")
    pl.add_argument("--json", required=True)
    pl.add_argument("--dir", required=True)
    pl.add_argument("--out-dir", required=True)
    a = ap.parse_args()
    {"pick": pick, "json": results, "render": render, "plots": plots}[a.cmd](a)


if __name__ == "__main__":
    main()
