"""Append a benchmark section (machine, command, table) to benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:,.0f}"
        return str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def append_section(title: str, body: str) -> None:
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"\n## {title}\n\n_{stamp}; {machine()}_\n\n```bash\n{command}\n```\n\n{body}\n"
    if not RESULTS.exists():
        RESULTS.write_text("# sidlib benchmark results\n\nEvery section is appended by the script named in its command.\n")
    with RESULTS.open("a") as fh:
        fh.write(text)
    print(text)


def publish(title: str, body: str, write: bool = True) -> None:
    """Append ``body`` as a section of RESULTS.md, or only print it (a trial run: ``write=False``)."""
    if write:
        append_section(title, body)
    else:
        print(body)
