#!/usr/bin/env python3
"""Hyperband's training images against random search's (stdlib only; scripts/bench/hyperband.sh).

Takes pairs of nas.search files (random search at --max-epochs, then Hyperband, same seed). For each
pair: random search's best validation accuracy and its training images (the sum over its evaluated
children of epochs x images per epoch); the training images Hyperband had spent, in evaluation
order, when a child trained for --max-epochs first scored at least that best; their ratio. Prints
one JSON object per pair and the median ratio (a pair Hyperband never got there counts as
infinitely many images: the median is null when they are half or more). Every child trained
counts, evaluated or failed.

Judged on separate images: each search's own maximum is the luckiest draw of its validation noise,
and random search takes the maximum over more children. So the chosen children are judged too:
--judge-list DIR writes, as DIR/HASH/arch.json, random search's best child and each child that
became Hyperband's incumbent (its best child trained for --max-epochs so far, by validation
accuracy), and prints their hashes, for the caller to retrain and score on the test set; --judged
DIR then reads each
child's nas-benchmark result from DIR/HASH/bench.json and prints the same figures with every chosen
child scored by its judged accuracy (Hyperband's incumbent is still chosen by validation; it has
reached the target when it and every later incumbent score at least random search's best).
"""
import argparse
import json
import math
import os
import statistics


def load(path):
    """Images per epoch, epochs of a child without fidelity_epochs, the children trained (in order)."""
    with open(path) as f:
        doc = json.load(f)
    opts = doc["estimator_settings"]["options"]
    trained = [c for c in doc["candidates"] if c["feasible"] and not c.get("screened", False)]
    return opts["train_images"], opts["epochs"], trained


def val_acc(c):
    return c["metrics"]["val_acc"]


def random_search(path):
    """Random search's best child (by validation accuracy) and its training images."""
    images, epochs, trained = load(path)
    best = max((c for c in trained if c["evaluated"]), key=val_acc)
    return best, sum(c.get("fidelity_epochs", epochs) * images for c in trained)


def incumbents(path, max_epochs):
    """Hyperband's images in all, and (images spent, child) each time a child trained for max_epochs
    scored above every earlier one."""
    images, epochs, trained = load(path)
    spent, best, steps = 0, -1.0, []
    for c in trained:
        e = c.get("fidelity_epochs", epochs)
        spent += e * images
        if e == max_epochs and c["evaluated"] and val_acc(c) > best:
            best = val_acc(c)
            steps.append((spent, c))
    return spent, steps


def images_to_reach(steps, score, target):
    """The images spent when Hyperband's incumbent reached the target for good: judged scores of
    later incumbents (chosen by validation) may fall below it again."""
    needed = None
    for spent, c in steps:
        if score(c) < target:
            needed = None
        elif needed is None:
            needed = spent
    return needed


def judged_acc(judged_dir, c):
    with open(os.path.join(judged_dir, c["hash"], "bench.json")) as f:
        return json.load(f)["accuracy"]["top1"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-epochs", type=int, required=True)
    ap.add_argument("--judge-list", help="a folder to write the chosen children to judge into: HASH/arch.json")
    ap.add_argument("--judged", help="a folder of judged children: HASH/bench.json")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if len(args.files) % 2:
        raise SystemExit("hyperband_report.py: expected pairs of files (random, hyperband), found %d" % len(args.files))
    pairs = list(zip(args.files[::2], args.files[1::2]))
    if args.judge_list:
        write_children_to_judge(args.judge_list, pairs, args.max_epochs)
        return
    score = (lambda c: judged_acc(args.judged, c)) if args.judged else val_acc
    ratios, reached = [], 0
    for rnd_path, hb_path in pairs:
        rnd_best, rnd_total = random_search(rnd_path)
        target = score(rnd_best)
        spent, steps = incumbents(hb_path, args.max_epochs)
        needed = images_to_reach(steps, score, target)
        ratio = needed / rnd_total if needed is not None else math.inf
        reached += needed is not None
        ratios.append(ratio)
        print(json.dumps({"what": "seed", "random": rnd_path, "scored_on": "test" if args.judged else "validation",
                          "random_best": target, "random_images": rnd_total,
                          "hyperband_best": score(steps[-1][1]) if steps else None,
                          "hyperband_incumbents": [score(c) for _, c in steps],
                          "hyperband_images_total": spent, "hyperband_images_to_reach": needed,
                          "ratio": None if needed is None else ratio}))
    median = statistics.median(ratios)
    print(json.dumps({"what": "hyperband", "scored_on": "test" if args.judged else "validation",
                      "pairs": len(ratios), "reached": reached,
                      "median_ratio": None if math.isinf(median) else median, "target": "median ratio <= 1/3"}))


def write_children_to_judge(judged_dir, pairs, max_epochs):
    """Each chosen child's arch as judged_dir/HASH/arch.json (once); prints the hashes."""
    seen = set()
    for rnd_path, hb_path in pairs:
        chosen = [random_search(rnd_path)[0]] + [c for _, c in incumbents(hb_path, max_epochs)[1]]
        for c in chosen:
            if c["hash"] in seen:
                continue
            seen.add(c["hash"])
            os.makedirs(os.path.join(judged_dir, c["hash"]), exist_ok=True)
            with open(os.path.join(judged_dir, c["hash"], "arch.json"), "w") as f:
                json.dump(c["arch"], f)
            print(c["hash"])

if __name__ == "__main__":
    main()
