"""Run real ansible-playbook on this repository's collection and read the results of each task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .paths import REPO


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    tasks: dict[str, dict] = field(default_factory=dict)  # task name -> result on localhost

    def __getitem__(self, task_name: str) -> dict:
        return self.tasks[task_name]


def run_playbook(workdir: Path, tasks: list[dict], extra_vars: dict | None = None, check: bool = False,
                 diff: bool = False, env: dict | None = None, module_defaults: dict | None = None) -> PlaybookRun:
    """Run one play on localhost with the given tasks; results come from the json callback."""
    workdir.mkdir(parents=True, exist_ok=True)
    play = {"name": "test", "hosts": "localhost", "gather_facts": False, "tasks": tasks}
    if module_defaults:
        play["module_defaults"] = module_defaults
    playbook = workdir / f"playbook-{len(list(workdir.glob('playbook-*.yml')))}.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable, **(env or {}))
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=run_env, timeout=600)
    result = PlaybookRun(proc.returncode, proc.stdout, proc.stderr)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return result
    for play_report in report.get("plays", []):
        for task in play_report.get("tasks", []):
            host_result = task.get("hosts", {}).get("localhost")
            if host_result is not None:
                result.tasks[task["task"]["name"]] = host_result
    return result
