# voltha.envoy: the two commands users need are `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export STATE_DIR ?= $(CURDIR)/.state
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help setup test unit sanity lint images integration molecule bench docs lab lab-down lab-rotate-tls lab-processes lab-processes-down lab-cluster lab-cluster-down test-cluster bench-cluster constraints clean

help:
	@echo "make lab    bring up the local lab"
	@echo "make test   set up the machine, then run every test (unit, sanity, lint, integration, molecule)"
	@echo "make bench  run the benchmarks and rewrite BENCHMARKS.md"
	@echo "make docs   build the collection's HTML docs into .state/docs/build/html"
	@echo "make lab-cluster       the lab on three test hosts of this machine (make lab-cluster-down)"
	@echo "make test-cluster      only its molecule scenario; make bench-cluster: its benchmarks"
	@echo "make setup  only prepare the machine (venv, Docker Engine's programs, Consul, Envoy)"

setup:
	@$(PYTHON) scripts/setup.py

# The Docker-facing stages run on an engine of the tests' own (see README: what make test starts and leaves).
test: setup
	@$(PYTHON) scripts/run_tests.py all

unit sanity lint images integration molecule: setup
	@$(PYTHON) scripts/run_tests.py $@

bench: setup
	@$(BIN)/python -m tests.bench

# The lab on three test hosts, cold and warm, and its memory at rest: BENCHMARKS.md's section of its own.
bench-cluster: setup
	@$(BIN)/python -m tests.bench.cluster

# The collection's HTML docs (antsibull-docs and Sphinx, offline) in .state/docs/build/html.
docs: setup
	@$(PYTHON) scripts/collection_checks.py docs

# The local lab: every image built from source (offline), a one-node swarm, the stack deployed,
# then one call through the NBI. `make lab-down` removes the stack. TLS=1: the NBI with mutual TLS
# (a local CA; the client's files in /etc/voltha-envoy/voltha/tls).
comma       := ,
LAB_TLS_DIR := /etc/voltha-envoy/voltha/tls
LAB_ARGS    := $(if $(TLS),-e stack_nbi_tls=true -e stack_nbi_tls_client_auth=true)
NBI_TLS     := $(if $(TLS),--tls-ca $(LAB_TLS_DIR)/ca.crt --tls-cert $(LAB_TLS_DIR)/client.crt --tls-key $(LAB_TLS_DIR)/client.key)

lab: setup
	@$(PYTHON) scripts/docker_engine.py system
	@$(BIN)/ansible-playbook -i inventories/local playbooks/site.yml $(LAB_ARGS)
	@$(BIN)/python -m voltha_core_sim.nbi_client 127.0.0.1:50555 --count 3 $(NBI_TLS)
	@echo "NBI: 127.0.0.1:50555 (voltha.VolthaService through Envoy$(if $(TLS),$(comma) mutual TLS: $(NBI_TLS))); Consul: http://127.0.0.1:8500"
	@echo "Consul's ACL token for you: /etc/voltha-envoy/voltha/secrets/operator.token (export CONSUL_HTTP_TOKEN_FILE=...)"
	@echo "Prometheus: http://127.0.0.1:9090 (targets: /targets, alerts: /alerts; queries in the README)"
	@echo "Tear it down with: make lab-down"

# A new certificate (and key) for the NBI of a `make lab TLS=1`, rolled in without a failed call.
lab-rotate-tls: setup
	@$(BIN)/ansible-playbook -i inventories/local playbooks/deploy.yml -e stack_nbi_tls=true \
	  -e stack_nbi_tls_client_auth=true -e stack_nbi_tls_rotate=true

lab-down:
	@$(BIN)/ansible-playbook -i inventories/local playbooks/teardown.yml

# The same parts as plain processes, no Docker (Consul, simulated cores, envoyd + Envoy).
lab-processes: setup
	@$(BIN)/python scripts/lab.py up

lab-processes-down:
	@$(BIN)/python scripts/lab.py down

# The lab on three test hosts of this machine: a network namespace each on a bridge, a dockerd each,
# the registry on node1 (scripts/cluster.py; .state/cluster/nodes.json lists them). Down stops and
# removes it all, the nodes' data (images, swarm, volumes) too; KEEP=1 keeps the data.
lab-cluster: setup
	@$(PYTHON) scripts/cluster.py up
	@$(BIN)/ansible-playbook -i inventories/cluster playbooks/site.yml

lab-cluster-down:
	@$(PYTHON) scripts/cluster.py down $(if $(KEEP),,--purge)

# Only the molecule scenario of the three-host lab (make test runs it too, in its molecule stage).
test-cluster: setup
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test -s cluster

# Regenerate the pinned versions from requirements/requirements.in in a scratch venv.
constraints:
	@rm -rf .state/constraints-venv && $(PYTHON) -m venv .state/constraints-venv
	@.state/constraints-venv/bin/pip install -q -r requirements/requirements.in
	@{ echo "# Exact versions for .venv (pip install -c). Regenerate with: make constraints"; \
	   .state/constraints-venv/bin/pip freeze | sort -f; } > requirements/constraints.txt
	@rm -rf .state/constraints-venv

clean:
	rm -rf $(VENV) collections/ansible_collections/voltha/envoy/tests/output .pytest_cache
