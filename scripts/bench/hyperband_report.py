#!/usr/bin/env python3
"""Hyperband's training images against random search's (stdlib only; scripts/bench/hyperband.sh).

Takes pairs of nas.search files (random search at --max-epochs, then Hyperband, same seed). For each
pair: random search's best validation accuracy and its training images (the sum over its evaluated
children of epochs x images per epoch); the training images Hyperband had spent, in evaluation
order, when a child trained for --max-epochs first scored at least that best; their ratio. Prints
one JSON object per pair and the median ratio (a pair Hyperband never got there counts as
infinitely many images: the median is null when they are half or more). Every child trained
counts, evaluated or failed.
"""
import argparse
import json
import math
import statistics


def load(path):
    """Images per epoch, epochs of a child without fidelity_epochs, the children trained (in order)."""
    with open(path) as f:
        doc = json.load(f)
    opts = doc["estimator_settings"]["options"]
    trained = [c for c in doc["candidates"] if c["feasible"] and not c.get("screened", False)]
    return opts["train_images"], opts["epochs"], trained


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-epochs", type=int, required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if len(args.files) % 2:
        raise SystemExit("hyperband_report.py: expected pairs of files (random, hyperband), found %d" % len(args.files))
    ratios, reached = [], 0
    for rnd_path, hb_path in zip(args.files[::2], args.files[1::2]):
        rnd_images, rnd_epochs, rnd = load(rnd_path)
        target = max(c["metrics"]["val_acc"] for c in rnd if c["evaluated"])
        rnd_total = sum(c.get("fidelity_epochs", rnd_epochs) * rnd_images for c in rnd)
        hb_images, hb_epochs, hb = load(hb_path)
        spent, needed, hb_best = 0, None, 0.0
        for c in hb:
            epochs = c.get("fidelity_epochs", hb_epochs)
            spent += epochs * hb_images
            if epochs == args.max_epochs and c["evaluated"]:
                hb_best = max(hb_best, c["metrics"]["val_acc"])
                if needed is None and c["metrics"]["val_acc"] >= target:
                    needed = spent
        ratio = needed / rnd_total if needed is not None else math.inf
        reached += needed is not None
        ratios.append(ratio)
        print(json.dumps({"what": "seed", "random": rnd_path, "random_best": target, "random_images": rnd_total,
                          "hyperband_best": hb_best, "hyperband_images_total": spent,
                          "hyperband_images_to_reach": needed, "ratio": None if needed is None else ratio}))
    median = statistics.median(ratios)
    print(json.dumps({"what": "hyperband", "pairs": len(ratios), "reached": reached,
                      "median_ratio": None if math.isinf(median) else median, "target": "median ratio <= 1/3"}))


if __name__ == "__main__":
    main()
