#!/usr/bin/env python3
"""PyTorch reference for scripts/bench/train_step.sh, on Fashion-MNIST images held in memory; prints
the training images/s:
  default     trains one fixed child of an mbconv search space (the same block structure as
              nas-toolchain's static ChildNet);
  --sandwich  trains the weight-sharing supernet the way once-for-all and AttentiveNAS do in
              Python: dynamic layers that slice the largest weights, and per step the max child
              (labels, label smoothing, dropout), the min child and 2 random children (soft
              cross-entropy to the max child's predictions), gradients summed, one SGD step.
Also writes nas.arch files for chosen children.

Needs Debian's python3-torch (the same LibTorch as the C++ build): run it with /usr/bin/python3.
"""
import argparse
import gzip
import json
import random
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


def choices(v):
    return sorted(v if isinstance(v, list) else [v])


class DynConv(nn.Module):
    """The largest convolution; a child uses the first out (and in) channels and the centre k x k."""

    def __init__(self, cin, cout, k, stride=1, depthwise=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, 1 if depthwise else cin, k, k) * (2.0 / (cout * k * k)) ** 0.5)
        self.stride, self.depthwise = stride, depthwise

    def forward(self, x, out, k):
        cin, K = x.shape[1], self.weight.shape[2]
        w = self.weight[:cin if self.depthwise else out, :1 if self.depthwise else cin]
        if k != K:
            o = (K - k) // 2
            w = w[:, :, o:o + k, o:o + k]
        return F.conv2d(x, w.contiguous(), None, self.stride, k // 2, 1, cin if self.depthwise else 1)


class DynBN(nn.BatchNorm2d):
    def forward(self, x):
        c = x.shape[1]  # sliced running statistics are views: batch_norm updates them in place
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, self.momentum, self.eps)


class DynLinear(nn.Linear):
    def forward(self, x, out):
        return F.linear(x, self.weight[:out, :x.shape[1]], self.bias[:out])


class DynBlock(nn.Module):
    def __init__(self, cin, cout, e, k, stride, has_expand, se, act, residual):
        super().__init__()
        mid = cin * e if has_expand else cin
        if has_expand:
            self.expand_conv, self.expand_bn = DynConv(cin, mid, 1), DynBN(mid)
        self.dw_conv, self.dw_bn = DynConv(mid, mid, k, stride, True), DynBN(mid)
        if se:
            red = (mid + 3) // 4
            self.se_reduce, self.se_expand = DynLinear(mid, red), DynLinear(red, mid)
        self.project_conv, self.project_bn = DynConv(mid, cout, 1), DynBN(cout)
        self.has_expand, self.se, self.act, self.residual = has_expand, se, ACTS[act](), residual
        if residual:
            nn.init.zeros_(self.project_bn.weight)

    def forward(self, x, e, k, out):
        h = x
        if self.has_expand:
            h = self.act(self.expand_bn(self.expand_conv(h, x.shape[1] * e, 1)))
        h = self.act(self.dw_bn(self.dw_conv(h, h.shape[1], k)))
        if self.se:
            mid = h.shape[1]
            s = F.relu(self.se_reduce(h.mean((2, 3)), (mid + 3) // 4))
            h = h * F.hardsigmoid(self.se_expand(s, mid))[:, :, None, None]
        h = self.project_bn(self.project_conv(h, out, 1))
        return x + h if self.residual else h


class Supernet(nn.Module):
    def __init__(self, space, in_ch=1, classes=10):
        super().__init__()
        stem = max(choices(space["stem"]["width"]))
        k, st = space["stem"].get("kernel", 3), space["stem"].get("stride", 1)
        self.stem, self.stem_bn = DynConv(in_ch, stem, k, st), DynBN(stem)
        self.stem_k, self.stem_act, self.classes = k, ACTS[space["stem"].get("act", "relu")](), classes
        self.stages, ch = nn.ModuleList(), stem
        for ss in space["stages"]:
            out, blocks = max(choices(ss["width"])), nn.ModuleList()
            for b in range(max(choices(ss["depth"]))):
                blocks.append(DynBlock(ch, out, max(choices(ss["expand"])), max(choices(ss["kernel"])),
                                       ss.get("stride", 1) if b == 0 else 1, max(choices(ss["expand"])) > 1,
                                       ss.get("se", False), ss.get("act", "relu"), b > 0))
                ch = out
            self.stages.append(blocks)
        head = max(choices(space["head"]["width"]))
        self.head, self.head_bn = DynConv(ch, head, 1), DynBN(head)
        self.head_act, self.classifier = ACTS[space["head"].get("act", "relu")](), DynLinear(head, classes)

    def forward(self, x, arch, dropout=0.0):
        h = self.stem_act(self.stem_bn(self.stem(x, arch["stem_width"], self.stem_k)))
        h = h.contiguous(memory_format=torch.channels_last)  # as the C++ side does
        for blocks, sa in zip(self.stages, arch["stages"]):
            for blk, ba in zip(blocks, sa["blocks"]):
                h = blk(h, ba["expand"], ba["kernel"], sa["width"])
        h = self.head_act(self.head_bn(self.head(h, arch["head_width"], 1))).mean((2, 3))
        return self.classifier(F.dropout(h, dropout, self.training), self.classes)


def random_arch(space, rng):
    pick = lambda v: rng.choice(choices(v))
    stages = []
    for st in space["stages"]:
        d = pick(st["depth"])
        stages.append({"depth": d, "width": pick(st["width"]),
                       "blocks": [{"expand": pick(st["expand"]), "kernel": pick(st["kernel"])} for _ in range(d)]})
    return {"resolution": pick(space["resolution"]), "stem_width": pick(space["stem"]["width"]),
            "head_width": pick(space["head"]["width"]), "stages": stages}


def sandwich_step(net, opt, xb, yb, space, rng, random_children=2):
    """Max child on labels, min and random children distilled from it; one optimizer step."""
    resized = {}

    def inp(r):
        if r not in resized:
            resized[r] = xb if r == xb.shape[-1] else F.interpolate(xb, size=(r, r), mode="bilinear",
                                                                    align_corners=False)
        return resized[r]
    opt.zero_grad()
    big = choose(space, 1.0)
    logits = net(inp(big["resolution"]), big, dropout=0.1)
    F.cross_entropy(logits, yb, label_smoothing=0.1).backward()
    teacher = F.softmax(logits.detach(), 1)
    for a in [choose(space, 0.0)] + [random_arch(space, rng) for _ in range(random_children)]:
        out = net(inp(a["resolution"]), a)
        (-(teacher * F.log_softmax(out, 1)).sum(1).mean()).backward()
    opt.step()


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
    ap.add_argument("--sandwich", action="store_true", help="time the supernet's sandwich step instead")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    space = yaml.safe_load(open(a.space))
    if a.level is not None:
        json.dump(choose(space, a.level), open(a.write, "w"), indent=2, sort_keys=True)
        return
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    arch = choose(space, a.arch_level)
    net = (Supernet(space) if a.sandwich else Child(space, arch)).train().to(a.device)
    rng = random.Random(0)
    decay = [p for p in net.parameters() if p.dim() > 1]
    rest = [p for p in net.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-5}, {"params": rest, "weight_decay": 0}],
                          lr=0.05, momentum=0.9, nesterov=True)
    x = torch.from_numpy(idx(a.data + "/train-images-idx3-ubyte.gz")[: a.batch * 8].copy()).float().div_(255)
    x = ((x - 0.286) / 0.353).unsqueeze(1)
    y = torch.from_numpy(idx(a.data + "/train-labels-idx1-ubyte.gz")[: a.batch * 8].astype(np.int64))
    x, y = x.to(a.device), y.to(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    r = arch["resolution"]
    t0 = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            sync()
            t0 = time.perf_counter()
        i = step % 8
        xb, yb = x[i * a.batch:(i + 1) * a.batch], y[i * a.batch:(i + 1) * a.batch]
        if a.sandwich:
            sandwich_step(net, opt, xb, yb, space, rng)
            continue
        if r != xb.shape[-1]:
            xb = F.interpolate(xb, size=(r, r), mode="bilinear", align_corners=False)
        opt.zero_grad()
        F.cross_entropy(net(xb), yb, label_smoothing=0.1).backward()
        opt.step()
    sync()
    print("%.1f" % (a.steps * a.batch / (time.perf_counter() - t0)))


if __name__ == "__main__":
    main()
