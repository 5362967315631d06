#!/usr/bin/env bash
# Run the test stages (all, or one of: unit sanity lint integration molecule) in the venv and
# finish with one summary line. Every stage runs even when an earlier one failed.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
BIN="$REPO/.venv/bin"
export PATH="$BIN:$PATH"
export ANSIBLE_CONFIG="$REPO/ansible.cfg"
COLLECTION="$REPO/collections/ansible_collections/voltha/envoy"

stage_unit() { pytest tests/unit -q; }

stage_sanity() {
  # --venv: ansible-test builds its own venvs offline with scripts/ansible_test_get_pip.py (see setup).
  (cd "$COLLECTION" && ansible-test sanity --venv --python 3.11 --color no)
}

stage_lint() {
  local rc=0
  ruff check . || rc=1
  ansible-lint --offline --profile production --nocolor || rc=1
  return $rc
}

stage_integration() { pytest tests/integration -q; }

stage_molecule() {
  local scenarios=() dir
  for dir in molecule/*/; do
    [ -f "$dir/molecule.yml" ] && scenarios+=("$(basename "$dir")")
  done
  if [ ${#scenarios[@]} -eq 0 ]; then
    echo "molecule: no scenarios yet"
    return 0
  fi
  # Every image of the lab, built from source; nothing is built again unless its inputs changed.
  ansible-playbook -i inventories/local playbooks/build.yml || return 1
  local rc=0 s
  for s in "${scenarios[@]}"; do
    molecule test -s "$s" || rc=1
  done
  return $rc
}

stages=("$@")
if [ ${#stages[@]} -eq 0 ] || [ "${stages[0]}" = all ]; then
  stages=(unit sanity lint integration molecule)
fi

passed=0 failed=0 report=()
start_all=$SECONDS
for s in "${stages[@]}"; do
  echo "=== test stage: $s"
  t0=$SECONDS
  if "stage_$s"; then
    passed=$((passed + 1)); report+=("$s ok $((SECONDS - t0))s")
  else
    failed=$((failed + 1)); report+=("$s FAILED $((SECONDS - t0))s")
  fi
done
echo "=== make test: ${report[*]} (total $((SECONDS - start_all))s)"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
