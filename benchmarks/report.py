"""What every benchmark does with its results: the machine it ran on, the JSON file, the table it prints."""
from __future__ import annotations

import json
import os
import platform


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "nproc": os.cpu_count(), "python": platform.python_version()}


def save_json(results: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def keeper(results: dict, out: str | None, summarize):
    """keep(result): adds one run's result to `results`, summarizes them again and rewrites `out`, so that a
    long benchmark that stops still leaves what it measured (its --resume goes on from there)."""
    def keep(result: dict) -> None:
        results["runs"].append(result)
        results["summary"] = summarize(results["runs"])
        if out:
            save_json(results, out)
    return keep


def publish(results: dict, path: str, table: str) -> None:
    """Writes the results to `path` and prints their markdown table."""
    save_json(results, path)
    print(table)
    print(f"wrote {path}")
