"""The collection as Galaxy and its users get it: the built tarball checked by Galaxy's importer and
antsibull-docs, and its HTML docs.

python3 scripts/collection_checks.py check   build the tarball; galaxy-importer (offline) and
                                              antsibull-docs lint-collection-docs --plugin-docs on it
python3 scripts/collection_checks.py docs    the HTML docs (antsibull-docs + Sphinx, offline) in .state/docs
python3 scripts/collection_checks.py images  the images role of the installed tarball, run from an empty
                                              directory with its defaults (it fetches what it needs)

Both run the tools make setup installs in .state/tools-venv. check exits 1 when either tool reports
an error, or a warning that is not in ACCEPTED (with the reason it stays).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("STATE_DIR", REPO / ".state")).resolve()
COLLECTION = REPO / "collections" / "ansible_collections" / "voltha" / "envoy"
TOOLS = STATE / "tools-venv" / "bin"
VENV_BIN = REPO / ".venv" / "bin"
# Warnings that stay, each with why.
ACCEPTED = {
    # The modules are Apache-2.0 like the rest of the collection; ansible-test's validate-modules wants
    # GPLv3 headers, so tests/sanity/ignore-2.19.txt names each module for that one check.
    "Ignore files skip ansible-test sanity tests": "modules are Apache-2.0, not GPLv3",
}
IMPORTER_CONFIG = """[galaxy-importer]
RUN_ANSIBLE_TEST = False
LOCAL_IMAGE_DOCKER = False
RUN_ANSIBLE_LINT = True
OFFLINE_ANSIBLE_LINT = True
"""


def dependency_collections() -> str:
    """Where community.docker, community.general and community.crypto are: the ansible package in .venv."""
    found = sorted((REPO / ".venv" / "lib").glob("python3*/site-packages"))
    if not found:
        raise SystemExit("collection checks: no .venv; run make setup first")
    return str(found[0])


def tool_env(work: Path) -> dict:
    return dict(os.environ, PATH=f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}", HOME=str(work / "home"),
                ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(work / "collections"), dependency_collections()]),
                GALAXY_IMPORTER_CONFIG=str(work / "importer.cfg"), ANSIBLE_NOCOLOR="1", NO_COLOR="1")


def installed_env(work: Path) -> dict:
    """The environment of a playbook that sees only the collection installed in work/collections and
    the ansible package's collections: not the checkout's, which the venv's path file puts on
    sys.path (Ansible scans it unless told not to), nor any ANSIBLE_* setting of ours."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(work / "collections"), dependency_collections()]),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return env


def run(argv, env, cwd=None) -> tuple[int, str]:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def build_and_install(work: Path) -> Path:
    """The tarball, built from the work tree and installed into work/collections."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    galaxy = str(VENV_BIN / "ansible-galaxy")
    rc, out = run([galaxy, "collection", "build", str(COLLECTION), "--output-path", str(work), "--force"], env)
    if rc != 0:
        raise SystemExit(f"ansible-galaxy collection build failed:\n{out}")
    tarball = next(work.glob("voltha-envoy-*.tar.gz"))
    # --force, from outside the work tree: its own copy of the collection counts as installed otherwise.
    rc, out = run([galaxy, "collection", "install", "--offline", "--no-deps", "--force", "-p",
                   str(work / "collections"), str(tarball)], env, cwd=work)
    if rc != 0:
        raise SystemExit(f"ansible-galaxy collection install failed:\n{out}")
    return tarball


def findings(output: str) -> tuple[list[str], list[str]]:
    """(problems, accepted warnings) among a tool's output lines."""
    problems, accepted = [], []
    for line in output.splitlines():
        if not re.match(r"\s*(ERROR|WARNING)\b", line):
            continue
        (accepted if any(text in line for text in ACCEPTED) else problems).append(line.strip())
    return problems, sorted(set(accepted))


def check() -> int:
    if not (TOOLS / "python").exists():
        raise SystemExit(f"collection checks: no {TOOLS.parent}; run make setup first")
    with tempfile.TemporaryDirectory(prefix="voltha-envoy-collection-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        (work / "importer.cfg").write_text(IMPORTER_CONFIG)
        tarball = build_and_install(work)
        env = tool_env(work)
        failed = False
        rc, out = run([str(TOOLS / "python"), "-m", "galaxy_importer.main", str(tarball)], env, cwd=work)
        problems, accepted = findings(out)
        ok = rc == 0 and "Importer processing completed successfully" in out and not problems
        print(f"galaxy-importer {tarball.name}: {'ok' if ok else 'FAILED'}"
              + "".join(f"\n  {line}" for line in problems)
              + "".join(f"\n  accepted: {line} ({next(r for t, r in ACCEPTED.items() if t in line)})"
                        for line in accepted))
        failed |= not ok
        installed = work / "collections" / "ansible_collections" / "voltha" / "envoy"
        rc, out = run([str(TOOLS / "antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."], env,
                      cwd=installed)
        ok = rc == 0
        print(f"antsibull-docs lint-collection-docs --plugin-docs: {'ok' if ok else 'FAILED'}"
              + ("" if ok else "\n" + out.strip()))
        failed |= not ok
    return 1 if failed else 0


def docs() -> int:
    dest = STATE / "docs"
    with tempfile.TemporaryDirectory(prefix="voltha-envoy-docs-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        build_and_install(work)
        env = tool_env(work)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(mode=0o755, parents=True)  # sphinx-init wants it there, and writable only by us
        rc, out = run([str(TOOLS / "antsibull-docs"), "sphinx-init", "--use-current", "--lenient",
                       "--dest-dir", str(dest), "voltha.envoy"], env)
        if rc != 0:
            print(out, file=sys.stderr)
            return 1
        rc, out = run(["bash", str(dest / "build.sh")], dict(env, PATH=f"{TOOLS}{os.pathsep}{env['PATH']}"), cwd=dest)
        if rc != 0:
            print(out[-4000:], file=sys.stderr)
            return 1
    print(f"docs: {dest / 'build' / 'html' / 'index.html'}")
    return 0


IMAGES_PLAY = """---
- name: Build the images with the installed collection's role and its defaults
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: voltha.envoy.images
"""


def images() -> int:
    """ansible-playbook with only the installed tarball and the ansible package's collections on the path."""
    with tempfile.TemporaryDirectory(prefix="voltha-envoy-installed-") as tmp:
        work = Path(tmp)
        build_and_install(work)
        play = work / "playbook"
        play.mkdir()
        (play / "images.yml").write_text(IMAGES_PLAY)
        env = installed_env(work)
        done = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-e",
                               f"ansible_python_interpreter={VENV_BIN / 'python'}", "images.yml"],
                              cwd=play, env=env, text=True, capture_output=True)
        print(done.stdout[-6000:] + done.stderr[-3000:])
        return done.returncode


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["check"]:
        return check()
    if argv == ["docs"]:
        return docs()
    if argv == ["images"]:
        return images()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
