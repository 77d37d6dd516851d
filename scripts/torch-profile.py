"""Where the time of PyTorch's CPU training step goes, layer by layer, on the same work as
clamp's examples/step_profile.rs: the reference step of ../shared/bench/torch_step.py (its model,
the authors' loss, its read-out, Adam; batch 256 x 2 views), timed with torch.profiler.

    ~/.cache/clamp-torch-venv/bin/python scripts/torch-profile.py [BENCH_DIR] [--steps 10]

BENCH_DIR holds torch_step.py and authors_loss.py (default ../shared/bench beside the
checkout). Prints one markdown table in milliseconds per step: each layer's forward (a
record_function around it) and each autograd node's backward, then the whole step.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", nargs="?", default=os.path.join(here, "..", "..", "shared", "bench"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.bench))
    import torch_step as ts  # noqa: E402
    from authors_loss import LogRepulsiveEllipsoidPackingLossUnitNorm  # noqa: E402

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, m = ts.BATCH, ts.VIEWS
    model = ts.SmallCnnClamp()
    loss_fn = LogRepulsiveEllipsoidPackingLossUnitNorm(m, b, lw0=0.0, lw1=1.0, rs=ts.RADIUS_SCALE,
                                                       pot_pow=ts.ALPHA)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-5,
                           weight_decay=ts.WEIGHT_DECAY)
    inputs = [torch.randn(m * b, ts.CHANNELS, 28, 28) for _ in range(4)]
    model.train()

    names = []

    def layer(name, f, x):
        if name not in names:
            names.append(name)
        with record_function(name):
            return f(x)

    def layer_name(name):
        if name not in names:
            names.append(name)
        return name

    def forward(x):
        # The model's own forward (torch_step.SmallCnnClamp), one record_function per layer.
        x = layer("conv 1 (1 -> 16, 28x28, bias)", model.conv1, x)
        x = layer("relu (16 x 28x28)", F.relu, x)
        x = layer("max pool 2x2 (16 x 28x28)", lambda t: F.max_pool2d(t, 2), x)
        x = layer("conv 2 (16 -> 32, 14x14)", model.conv2, x)
        x = layer("batch norm (32 x 14x14)", model.bn2, x)
        x = layer("relu (32 x 14x14)", F.relu, x)
        x = layer("max pool 2x2 (32 x 14x14)", lambda t: F.max_pool2d(t, 2), x)
        x = layer("conv 3 (32 -> 64, 7x7)", model.conv3, x)
        x = layer("batch norm (64 x 7x7)", model.bn3, x)
        x = layer("relu (64 x 7x7)", F.relu, x)
        x = layer("adaptive avg pool -> 2x2", lambda t: F.adaptive_avg_pool2d(t, 2).flatten(1), x)
        return layer("projector (256 -> 256 -> 32)",
                     lambda t: model.output(F.relu(model.hidden(t))), x)

    def step(k):
        preds = forward(inputs[k % len(inputs)])
        with record_function(layer_name("CLAMP loss + read-out")):
            ts.readout(preds.detach().reshape(m, b, ts.DIM), ts.RADIUS_SCALE, ts.ALPHA)
            loss = loss_fn(preds, None)
            loss.item()
        opt.zero_grad(set_to_none=True)
        with record_function("backward"):
            loss.backward()
        with record_function(layer_name("Adam (97,408 parameters)")):
            opt.step()

    for k in range(3):
        step(k)
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for k in range(args.steps):
            step(k)
    per_step = (time.perf_counter() - started) / args.steps * 1e3

    forward_ms = {}
    backward_ms = {}
    node_prefix = "autograd::engine::evaluate_function: "
    for event in prof.key_averages():
        ms = event.cpu_time_total / 1e3 / args.steps
        if event.key.startswith(node_prefix):
            # One entry per autograd node type, its own work and what it calls.
            backward_ms[event.key[len(node_prefix):]] = ms
        elif event.key in names:
            forward_ms[event.key] = ms
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {b} x {m} views; "
          f"{args.steps} profiled steps (the profiler's own cost included)\n")
    print("| part | forward (ms) |")
    print("| --- | ---: |")
    for name in names:
        ms = forward_ms.get(name, 0.0)
        print(f"| {name} | {ms:.1f} |")
    print("\n| autograd node (backward) | ms per step |")
    print("| --- | ---: |")
    for name, ms in sorted(backward_ms.items(), key=lambda kv: -kv[1])[:14]:
        print(f"| {name} | {ms:.1f} |")
    print(f"\n| **one training step** (profiled) | {per_step:.1f} ms | {m * b / per_step * 1e3:.0f} views/s |")


if __name__ == "__main__":
    main()
