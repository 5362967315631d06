#!/usr/bin/env python3
"""Run the test stages (all, or some of: unit sanity lint images integration molecule) and sum them up.

Every stage runs even when an earlier one failed. The Docker-facing stages (images, integration,
molecule) run on a Docker Engine of the tests' own (scripts/docker_engine.py): started before the first
of them, in a network namespace of its own, and stopped when the run ends, pass, fail or Ctrl-C. The
integration and molecule stages run inside that namespace, where the stacks publish their ports; the
images stage runs outside it, because debootstrap reads the Debian mirror, and so does the molecule
scenario cluster, whose three test hosts run engines of their own (scripts/cluster.py).

Environment:
  VOLTHA_TEST_DOCKER_HOST   run the Docker stages on that engine instead (it gets a swarm and stacks)
  VOLTHA_TEST_ALLOW_SKIPS=1 a skipped test does not fail its stage (it is still counted)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

try:  # run as a script (scripts/ on the path) or imported as scripts.run_tests (the tests)
    from docker_engine import REPO, STATE, EngineError, TestEngine
except ImportError:
    from scripts.docker_engine import REPO, STATE, EngineError, TestEngine

BIN = REPO / ".venv" / "bin"
COLLECTION = REPO / "collections" / "ansible_collections" / "voltha" / "envoy"
REPORTS = STATE / "test-reports"
STAGES = ["unit", "sanity", "lint", "images", "integration", "molecule"]
DOCKER_STAGES = {"images", "integration", "molecule"}
OWN_ENGINES = {"cluster"}  # molecule scenarios that bring their own engines (scripts/cluster.py)
ALLOW_SKIPS = os.environ.get("VOLTHA_TEST_ALLOW_SKIPS", "") not in ("", "0", "false", "no")
# Only these molecule scenarios (comma-separated names), e.g. VOLTHA_TEST_SCENARIOS=replace make molecule.
SCENARIOS = [name for name in os.environ.get("VOLTHA_TEST_SCENARIOS", "").split(",") if name]


@dataclass
class Outcome:
    ok: bool
    detail: str = ""
    lines: list[str] = field(default_factory=list)


class Runner:
    def __init__(self):
        self.env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), STATE_DIR=str(STATE))
        # The user's own engine is never the tests' unless VOLTHA_TEST_DOCKER_HOST names it.
        for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            self.env.pop(name, None)
        self.engine: TestEngine | None = None
        self.engine_ready = False
        self.engine_error = ""
        self.engine_note = "not needed"
        self.images_built = False
        REPORTS.mkdir(parents=True, exist_ok=True)

    # -- processes

    def run(self, argv: list[str], cwd: Path = REPO, in_engine_netns: bool = False) -> tuple[int, list[str]]:
        """Run argv with its output shown as it comes and kept for the summary."""
        if in_engine_netns and self.engine is not None:
            argv = self.engine.wrap(argv)
        proc = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace")
        lines = []
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                lines.append(line.rstrip("\n"))
            return proc.wait(), lines
        except BaseException:
            proc.terminate()
            proc.wait(60)
            raise

    # -- the engine

    def start_engine(self) -> None:
        self.engine_ready = True
        external = os.environ.get("VOLTHA_TEST_DOCKER_HOST")
        if external:
            self.env["DOCKER_HOST"] = external
            self.engine_note = f"VOLTHA_TEST_DOCKER_HOST={external} (the tests' swarm and stacks are on it)"
            return
        engine = TestEngine()
        try:
            print(f"test engine: {engine.up()}", flush=True)
        except EngineError as err:
            self.engine_error = str(err)
            self.engine_note = f"none: {err}"
            return
        self.engine = engine
        self.env["DOCKER_HOST"] = engine.endpoint
        self.engine_note = f"{engine.name}, data in {engine.state / 'data'}"

    def stop_engine(self) -> None:
        if self.engine is not None:
            said = self.engine.down()
            print(f"test engine: {said}", flush=True)
            self.engine_note += "; stopped"
            self.engine = None

    # -- stages

    def pytest(self, name: str, paths: list[str], in_engine_netns: bool = False) -> Outcome:
        report = REPORTS / f"{name}.xml"
        report.unlink(missing_ok=True)
        rc, _ = self.run([str(BIN / "pytest"), *paths, "-q", f"--junitxml={report}"], in_engine_netns=in_engine_netns)
        counts = junit_counts(report)
        if counts is None:
            return Outcome(False, f"pytest exited {rc} and wrote no report")
        tests, failed, errors, skipped = counts
        detail = f"{tests} tests: {tests - failed - errors - skipped} passed, {failed} failed, {errors} errors, " \
                 f"{skipped} skipped"
        ok = rc == 0
        if skipped and not ALLOW_SKIPS:
            ok = False
            detail += " (a skip fails the stage: VOLTHA_TEST_ALLOW_SKIPS=1 allows it)"
        return Outcome(ok, detail, junit_failures(report))

    def stage_unit(self) -> Outcome:
        # The collection's own unit tests (laid out as Ansible collections do) and the core simulator's.
        return self.pytest("unit", [str(COLLECTION.relative_to(REPO) / "tests" / "unit"), "tests/unit"])

    def stage_sanity(self) -> Outcome:
        # --venv: ansible-test builds its own venvs offline with the pip bootstrap setup put in place.
        rc, lines = self.run([str(BIN / "ansible-test"), "sanity", "--venv", "--python", "3.11", "--color", "no"],
                             cwd=COLLECTION)
        ran = sum(1 for line in lines if line.startswith("Running sanity test"))
        skipped = sum(1 for line in lines if re.match(r"(WARNING: )?Skipping sanity test", line))
        failed = sum(1 for line in lines if re.match(r"ERROR: Found \d+ .* issue", line))
        return Outcome(rc == 0, f"{ran} sanity tests run, {skipped} skipped{', failures reported' if failed else ''}")

    def stage_lint(self) -> Outcome:
        ruff, _ = self.run([str(BIN / "ruff"), "check", "."])
        # --strict: a warning fails too, so nothing short of the production profile passes.
        lint, _ = self.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--strict", "--nocolor"])
        # The lab's Prometheus rules, by Debian's promtool (make setup unpacks it).
        rules, _ = self.run([str(STATE / "prometheus-root" / "usr" / "bin" / "promtool"), "check", "rules",
                             str(COLLECTION / "roles" / "stack" / "files" / "prometheus-rules.yml")])
        # The built tarball, by Galaxy's importer and antsibull-docs.
        collection, _ = self.run([sys.executable, str(REPO / "scripts" / "collection_checks.py"), "check"])
        words = lambda rc: "ok" if rc == 0 else "FAILED"  # noqa: E731 (a local formatter)
        return Outcome(ruff == 0 and lint == 0 and rules == 0 and collection == 0,
                       f"ruff {words(ruff)}, ansible-lint (production, strict) {words(lint)}, "
                       f"promtool check rules {words(rules)}, galaxy-importer and antsibull-docs {words(collection)}")

    def build_images(self) -> tuple[int, list[str]]:
        """Every image of the lab, built from source (outside the engine's namespace: debootstrap reads
        the Debian mirror); nothing is built again unless its inputs changed."""
        rc, lines = self.run([str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/build.yml"])
        self.images_built = rc == 0
        return rc, lines

    def stage_images(self) -> Outcome:
        rc, lines = self.build_images()
        changed = recap_changed(lines)
        # The same role from the built tarball, in an empty directory, with its defaults: it fetches
        # Consul, Prometheus and the wheels itself (into ~/.cache/voltha.envoy) and builds the same images.
        installed_rc, lines = self.run([sys.executable, str(REPO / "scripts" / "collection_checks.py"), "images"])
        return Outcome(rc == 0 and installed_rc == 0,
                       f"playbooks/build.yml: {changed} task(s) changed; from the installed tarball: "
                       f"{recap_changed(lines) if installed_rc == 0 else 'FAILED'}")

    def stage_integration(self) -> Outcome:
        # Some tests run the lab's images; inside the engine's namespace debootstrap cannot reach the
        # Debian mirror, so make integration alone builds them first, as make molecule does.
        if not self.images_built:
            rc, _ = self.build_images()
            if rc != 0:
                return Outcome(False, "the images the tests run could not be built (playbooks/build.yml)")
        return self.pytest("integration", ["tests/integration"], in_engine_netns=True)

    def stage_molecule(self) -> Outcome:
        scenarios = sorted(d.name for d in (REPO / "molecule").iterdir() if (d / "molecule.yml").exists())
        unknown = sorted(set(SCENARIOS) - set(scenarios))
        if unknown:
            return Outcome(False, f"VOLTHA_TEST_SCENARIOS names no scenario {', '.join(unknown)} "
                                  f"(there are {', '.join(scenarios)})")
        scenarios = [name for name in scenarios if name in SCENARIOS] if SCENARIOS else scenarios
        if not scenarios:
            return Outcome(False, "no molecule scenarios found")
        # The scenarios on the test engine deploy its images; make molecule alone builds them first.
        if not self.images_built and any(name not in OWN_ENGINES for name in scenarios):
            rc, _ = self.build_images()
            if rc != 0:
                return Outcome(False, "the images for the scenarios could not be built (playbooks/build.yml)")
        results = []
        for scenario in scenarios:
            t0 = time.monotonic()
            # The cluster scenario's hosts have engines of their own; its node1 builds the images from a
            # debootstrap that reads the Debian mirror, so it runs outside the test engine's namespace.
            own = scenario in OWN_ENGINES
            rc, _ = self.run([str(BIN / "molecule"), "test", "-s", scenario], in_engine_netns=not own)
            results.append((scenario, rc == 0, time.monotonic() - t0))
        detail = ", ".join(f"{s} {'ok' if ok else 'FAILED'} ({secs:.0f}s)" for s, ok, secs in results)
        return Outcome(all(ok for _, ok, _ in results), f"{len(results)} scenarios: {detail}")


def recap_changed(lines: list[str]) -> str:
    """The changed count of a playbook's last recap line."""
    recap = [line for line in lines if re.match(r"localhost\s+: ok=", line)]
    found = re.search(r"changed=(\d+)", recap[-1]) if recap else None
    return found.group(1) if found else "?"


def junit_counts(path: Path) -> tuple[int, int, int, int] | None:
    """(tests, failures, errors, skipped) of a pytest JUnit report."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    return tuple(sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped"))


def junit_failures(path: Path, limit: int = 10) -> list[str]:
    """One line per failed or erroring test of a pytest JUnit report: its id and the first line of why.

    The summary is the end of the log, which is what a CI page shows; it names what failed so a flaky test is
    known from one run."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    said = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            found = case.find(kind)
            if found is None:
                continue
            module = (case.get("classname") or "").replace(".", "/")
            why = (found.get("message") or found.text or "").strip().splitlines()
            said.append(f"{kind}: {module}.py::{case.get('name')}: {why[0][:300] if why else '(no message)'}")
    if len(said) > limit:
        said = said[:limit] + [f"... and {len(said) - limit} more (see the report)"]
    return said


def interrupted(signum, frame):
    """SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so the engine is stopped either way."""
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    stages = argv or ["all"]
    if stages == ["all"]:
        stages = STAGES
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"unknown stage(s): {', '.join(unknown)}; the stages are: {' '.join(STAGES)}", file=sys.stderr)
        return 2
    runner = Runner()
    signal.signal(signal.SIGTERM, interrupted)
    rows: list[tuple[str, Outcome, float]] = []
    started = time.monotonic()
    try:
        for stage in stages:
            print(f"=== test stage: {stage}", flush=True)
            t0 = time.monotonic()
            if stage in DOCKER_STAGES and not runner.engine_ready:
                runner.start_engine()
            if stage in DOCKER_STAGES and runner.engine_error:
                outcome = Outcome(False, f"no Docker Engine for the tests: {runner.engine_error}")
            else:
                outcome = getattr(runner, f"stage_{stage}")()
            rows.append((stage, outcome, time.monotonic() - t0))
    except KeyboardInterrupt:
        rows.append(("interrupted", Outcome(False, "the run was stopped"), 0.0))
    finally:
        try:
            runner.stop_engine()
        except Exception as err:  # the summary must still be printed
            print(f"test engine: could not be stopped: {err}", flush=True)
    print(f"=== make test: {time.monotonic() - started:.0f}s; Docker Engine: {runner.engine_note}")
    for stage, outcome, seconds in rows:
        print(f"  {stage:<12} {'ok' if outcome.ok else 'FAILED':<7} {seconds:6.0f}s  {outcome.detail}")
        for line in outcome.lines:
            print(f"      {line}")
    passed = sum(1 for _, o, _ in rows if o.ok)
    print(f"stages: {passed} passed, {len(rows) - passed} failed", flush=True)
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
