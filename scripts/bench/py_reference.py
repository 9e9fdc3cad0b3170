#!/usr/bin/env python3
"""PyTorch reference for scripts/bench/train_step.sh: trains one fixed child of an mbconv search
space (the same block structure as nas-toolchain's static ChildNet) on Fashion-MNIST images held in
memory, and prints the training images/s. Also writes nas.arch files for chosen children.

Needs Debian's python3-torch (the same LibTorch as the C++ build): run it with /usr/bin/python3.
"""
import argparse
import gzip
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml


def choose(space, level):
    """The child at a global level in [0, 1] of every choice set (0 smallest, 1 largest)."""
    def at(s):
        s = sorted(s if isinstance(s, list) else [s])
        return s[round(level * (len(s) - 1))]
    stages = []
    for st in space["stages"]:
        d = at(st["depth"])
        stages.append({"depth": d, "width": at(st["width"]),
                       "blocks": [{"expand": at(st["expand"]), "kernel": at(st["kernel"])} for _ in range(d)]})
    return {"kind": "nas.arch", "schema_version": 1, "space": space["name"], "resolution": at(space["resolution"]),
            "stem_width": at(space["stem"]["width"]), "head_width": at(space["head"]["width"]), "stages": stages}


ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "swish": nn.SiLU}


class SE(nn.Module):
    def __init__(self, mid):
        super().__init__()
        red = (mid + 3) // 4
        self.reduce, self.expand = nn.Linear(mid, red), nn.Linear(red, mid)

    def forward(self, x):
        s = x.mean((2, 3))
        s = F.hardsigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s[:, :, None, None]


class Block(nn.Module):
    def __init__(self, cin, cout, e, k, stride, has_expand, se, act, residual):
        super().__init__()
        mid = cin * e if has_expand else cin
        layers = []
        if has_expand:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), ACTS[act]()]
        layers += [nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), ACTS[act]()]
        if se:
            layers.append(SE(mid))
        layers += [nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body, self.residual = nn.Sequential(*layers), residual

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class Child(nn.Module):
    def __init__(self, space, arch, in_ch=1, classes=10):
        super().__init__()
        k, st = space["stem"].get("kernel", 3), space["stem"].get("stride", 1)
        self.stem = nn.Sequential(nn.Conv2d(in_ch, arch["stem_width"], k, st, k // 2, bias=False),
                                  nn.BatchNorm2d(arch["stem_width"]), ACTS[space["stem"].get("act", "relu")]())
        blocks, ch = [], arch["stem_width"]
        for ss, sa in zip(space["stages"], arch["stages"]):
            has_expand = max(ss["expand"] if isinstance(ss["expand"], list) else [ss["expand"]]) > 1
            for b, blk in enumerate(sa["blocks"]):
                blocks.append(Block(ch, sa["width"], blk["expand"], blk["kernel"], ss.get("stride", 1) if b == 0 else 1,
                                    has_expand, ss.get("se", False), ss.get("act", "relu"), b > 0))
                ch = sa["width"]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(ch, arch["head_width"], 1, bias=False), nn.BatchNorm2d(arch["head_width"]),
                                  ACTS[space["head"].get("act", "relu")]())
        self.classifier = nn.Linear(arch["head_width"], classes)

    def forward(self, x):
        x = self.stem(x).contiguous(memory_format=torch.channels_last)  # as the C++ side does
        return self.classifier(self.head(self.blocks(x)).mean((2, 3)))


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", required=True)
    ap.add_argument("--level", type=float, help="write the child at this global level as nas.arch to --write")
    ap.add_argument("--write")
    ap.add_argument("--arch-level", type=float, default=1.0, help="train the child at this level (1: max)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    space = yaml.safe_load(open(a.space))
    if a.level is not None:
        json.dump(choose(space, a.level), open(a.write, "w"), indent=2, sort_keys=True)
        return
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    arch = choose(space, a.arch_level)
    net = Child(space, arch).train()
    decay = [p for p in net.parameters() if p.dim() > 1]
    rest = [p for p in net.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-5}, {"params": rest, "weight_decay": 0}],
                          lr=0.05, momentum=0.9, nesterov=True)
    x = torch.from_numpy(idx(a.data + "/train-images-idx3-ubyte.gz")[: a.batch * 8].copy()).float().div_(255)
    x = ((x - 0.286) / 0.353).unsqueeze(1)
    y = torch.from_numpy(idx(a.data + "/train-labels-idx1-ubyte.gz")[: a.batch * 8].astype(np.int64))
    r = arch["resolution"]
    t0 = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            t0 = time.perf_counter()
        i = step % 8
        xb, yb = x[i * a.batch:(i + 1) * a.batch], y[i * a.batch:(i + 1) * a.batch]
        if r != xb.shape[-1]:
            xb = F.interpolate(xb, size=(r, r), mode="bilinear", align_corners=False)
        opt.zero_grad()
        F.cross_entropy(net(xb), yb, label_smoothing=0.1).backward()
        opt.step()
    print("%.1f" % (a.steps * a.batch / (time.perf_counter() - t0)))


if __name__ == "__main__":
    main()
