"""`paczero bench`'s report: the timings as a table beside their floor, tokens, compute,
memory and the targets."""

from __future__ import annotations


def format_table(result: dict) -> str:
    c, sec, tok = result["config"], result["seconds"], result["tokens"]
    m = result["machine"]
    lines = [
        f"paczero bench: {c['model']} {c['track']} ({c['trainable']:,} trainable of "
        f"{c['parameters']:,}), {c['dtype']} on {c['device']}, sst2 pool {c['pool']}, "
        f"{c['mechanism']} M={c['subsets']}, micro-batch {c['micro_batch']} sequences / "
        f"{c.get('micro_batch_tokens') or 'any'} tokens, "
        f"restore {c['restore']}",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
        f"torch {m['torch']}" + (f", load {m['load_average']}" if "load_average" in m else ""),
        f"medians of {c['repeats']} repeats after {c['warmup']} warm-up",
        "",
        f"{'what':<38}{'seconds':>10}{'x floor':>10}",
    ]
    floor = sec["floor"]

    def row(name: str, key: str) -> None:
        if key in sec:
            lines.append(f"{name:<38}{sec[key]:>10.3f}{sec[key] / floor:>10.3f}")

    row("floor (2 forward passes, no z)", "floor")
    row("full step", "step")
    row("  forward passes inside the step", "step_forward")
    row("  perturbation passes (z, restore)", "perturbation")
    row("  mechanism (release)", "mechanism")
    row("reference-style step", "reference")
    lines.append("")
    pad = tok["pool_padded"] / max(tok["pool_real"], 1)
    lines.append(
        f"tokens/s: step {tok['step_per_s']:.0f}, floor {tok['floor_per_s']:.0f} "
        f"({tok['pool_real']} real tokens per pass, padding x{pad:.2f})"
    )
    comp = result.get("compute")
    if comp:
        lines.append(
            f"compute: floor {comp['floor_tflops']:.3g} TFLOP/s, step {comp['step_tflops']:.3g} "
            f"TFLOP/s; peak {comp['peak_tflops_probe']:.3g} TFLOP/s ({comp['probe']}): "
            f"floor {100 * comp['floor_fraction_of_peak']:.1f}%, "
            f"step {100 * comp['step_fraction_of_peak']:.1f}% of it"
        )
    mem = result.get("memory")
    if mem:
        for phase in ("inference", "train"):
            info = mem.get(phase, {})
            if "error" in info:
                lines.append(f"peak memory {phase}: failed ({info['error']})")
            else:
                lines.append(
                    f"peak memory {phase:<9}: {info['peak_bytes'] / 2**20:8.1f} MiB "
                    f"({info['kind']}; after load {info['base_bytes'] / 2**20:.1f} MiB)"
                )
    lines.append("")
    lines.append(f"{'target':<30}{'value':>10}{'target':>10}{'holds':>8}")
    for name, t in result["targets"].items():
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        ok = "-" if t["ok"] is None else ("yes" if t["ok"] else "NO")
        lines.append(f"{name:<30}{value:>10}{t['target']:>10}{ok:>8}")
    return "\n".join(lines)
