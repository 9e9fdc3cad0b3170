#!/usr/bin/env python3
"""Zero-cost proxies against trained accuracy (stdlib only).

Reads the nas.search file of the trained children (--trained) and one nas.search file per proxy and
weights (estimator zero_cost_<proxy>, scored on the same children), and writes, for each, the
Spearman rho and Kendall tau-b of the proxy's values against the trained validation accuracy, over
the children both scored, as JSON (--out, kind nas.proxies) and as a Markdown table on stdout.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fmnist"))
from report import kendall_tau, spearman_rho, write_atomic  # noqa: E402  (the experiment's own)

KIND, VERSION = "nas.proxies", 1


def scores(path, field=None):
    """hash -> score (or `field`, a cost) of the evaluated candidates, and the estimator's settings."""
    with open(path) as f:
        doc = json.load(f)
    out = {c["hash"]: c[field] if field else c["metrics"]["val_acc"] for c in doc["candidates"] if c["evaluated"]}
    failed = sum(1 for c in doc["candidates"] if not c["evaluated"])
    opts = doc.get("estimator_settings", {}).get("options", {})
    return out, failed, opts


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trained", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("proxies", nargs="+")
    args = ap.parse_args()
    trained, _, topts = scores(args.trained)
    rows = []

    def add_row(values, proxy, weights, failed, path):
        common = sorted(set(values) & set(trained))
        if len(common) < 3:
            sys.exit("report.py: %s: expected children scored in %s too, found %d" % (path, args.trained, len(common)))
        x = [values[h] for h in common]
        y = [trained[h] for h in common]
        rows.append({"proxy": proxy, "weights": weights, "children": len(common), "failed": failed,
                     "spearman_rho": spearman_rho(x, y), "kendall_tau": kendall_tau(x, y),
                     "file": os.path.basename(path)})

    for path in args.proxies:
        values, failed, opts = scores(path)
        add_row(values, opts.get("proxy"), opts.get("proxy_weights"), failed, path)
    for field in ("params", "mflops"):
        add_row(scores(args.trained, field)[0], field, "none", 0, args.trained)
    root = os.path.dirname(os.path.abspath(args.trained))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {"kind": KIND, "schema_version": VERSION, "children": len(trained),
           "trained": {"estimator": topts.get("estimator"), "epochs": topts.get("epochs"),
                       "train_images": topts.get("train_images")},
           "proxies": rows, "commit": commit, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "run": root}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_atomic(args.out, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print("| proxy | weights | children | Spearman rho | Kendall tau | failed |")
    print("|---|---|---|---|---|---|")
    fmt = lambda v: "n/a" if v is None else "%.3f" % v  # noqa: E731
    for r in rows:
        print("| %s | %s | %d | %s | %s | %d |" % (r["proxy"], r["weights"], r["children"], fmt(r["spearman_rho"]),
                                                fmt(r["kendall_tau"]), r["failed"]))


if __name__ == "__main__":
    main()
