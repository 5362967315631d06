"""The stack role's ACL tasks against a real Consul with ACLs on (default deny): they make each party's policy
and token, change nothing on a second run, and put back what was deleted or changed in Consul (a policy, a
token, a policy's rules, a policy added to a token), so the operator's token works again after the lab's
playbook runs."""

from __future__ import annotations

import uuid

import pytest

from tests.support.ansible_runner import run_playbook
from tests.support.consul_agent import acl_agent, consul_call
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow
PARTIES = ["agent", "vcore", "envoyd", "operator"]
APPLY = [{"name": "Apply the ACLs",
          "ansible.builtin.include_role": {"name": "voltha.envoy.stack", "tasks_from": "acl.yml"}}]
KEY = "service/voltha/data/core/assignment"


@pytest.fixture
def consul_with_acls(tmp_path):
    """Consul as the lab starts it: its agent token is the parties' one, which the role has not made yet."""
    tokens = {party: str(uuid.uuid4()) for party in PARTIES}
    with acl_agent(tmp_path / "consul", agent_token=tokens["agent"]) as (agent, master):
        yield agent, master, {"management": master, **tokens}


def node_addresses(agent, master) -> dict | None:
    """The agent's own node's tagged addresses in the catalog: only the agent's sync of its node writes them."""
    status, found = consul_call(f"{agent.url}/v1/catalog/node/{agent.node}", token=master)
    assert status == 200, found
    return (found or {}).get("Node", {}).get("TaggedAddresses")


def apply(tmp_path, agent, tokens) -> bool:
    """Run the role's ACL tasks; whether any task changed something."""
    run = run_playbook(tmp_path / "play", APPLY, extra_vars={
        "stack_acl_url": agent.url, "stack_acl_tokens": tokens, "stack_wait_timeout": 30, "stack_name": "acltest"})
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return any(result.get("changed") for result in run.tasks.values())


def operator_writes(agent, tokens) -> int:
    status, _ = consul_call(f"{agent.url}/v1/kv/{KEY}", "PUT", tokens["operator"], {"cores": []})
    return status


def policy(agent, master, name) -> dict:
    status, found = consul_call(f"{agent.url}/v1/acl/policy/name/{name}", token=master)
    assert status == 200, found
    return found


def token_of(agent, master, secret) -> dict:
    status, tokens = consul_call(f"{agent.url}/v1/acl/tokens", token=master)
    assert status == 200, tokens
    return next(token for token in tokens if consul_call(
        f"{agent.url}/v1/acl/token/{token['AccessorID']}", token=master)[1]["SecretID"] == secret)


def test_made_once_then_unchanged_and_what_was_deleted_or_changed_is_put_back(consul_with_acls, tmp_path):
    agent, master, tokens = consul_with_acls
    assert operator_writes(agent, tokens) == 403
    assert node_addresses(agent, master) is None

    assert apply(tmp_path, agent, tokens) is True
    assert operator_writes(agent, tokens) == 200
    # Consul's own agent syncs its node with its own token, which may do that and little else.
    wait_for(lambda: node_addresses(agent, master), timeout=30, what="the agent's node synced with its token")
    assert node_addresses(agent, master)["lan"] == agent.ip
    assert consul_call(f"{agent.url}/v1/kv/{KEY}", token=tokens["agent"])[0] == 403
    assert sorted(link["Name"] for link in token_of(agent, master, tokens["envoyd"])["Policies"]) == ["envoyd"]
    assert apply(tmp_path, agent, tokens) is False

    # The operator's policy deleted: its token stays, linked to nothing, and is refused.
    status, _ = consul_call(f"{agent.url}/v1/acl/policy/{policy(agent, master, 'operator')['ID']}", "DELETE", master)
    assert status == 200
    assert operator_writes(agent, tokens) == 403
    assert apply(tmp_path, agent, tokens) is True
    assert operator_writes(agent, tokens) == 200
    assert apply(tmp_path, agent, tokens) is False

    # Both deleted, the token first.
    accessor = token_of(agent, master, tokens["operator"])["AccessorID"]
    assert consul_call(f"{agent.url}/v1/acl/token/{accessor}", "DELETE", master)[0] == 200
    assert consul_call(f"{agent.url}/v1/acl/policy/{policy(agent, master, 'operator')['ID']}", "DELETE",
                       master)[0] == 200
    assert operator_writes(agent, tokens) == 403
    assert apply(tmp_path, agent, tokens) is True
    assert operator_writes(agent, tokens) == 200

    # A token given more than its own policy (envoyd's, the management policy too) is cut back to its own.
    envoyd_token = token_of(agent, master, tokens["envoyd"])
    assert consul_call(f"{agent.url}/v1/acl/token/{envoyd_token['AccessorID']}", "PUT", master, {
        "SecretID": tokens["envoyd"], "Policies": [{"Name": "envoyd"}, {"Name": "global-management"}]})[0] == 200
    elsewhere = f"{agent.url}/v1/kv/elsewhere"
    assert consul_call(elsewhere, "PUT", tokens["envoyd"], {})[0] == 200
    assert apply(tmp_path, agent, tokens) is True
    assert [link["Name"] for link in token_of(agent, master, tokens["envoyd"])["Policies"]] == ["envoyd"]
    assert consul_call(elsewhere, "PUT", tokens["envoyd"], {})[0] == 403

    # A policy's rules changed by hand (envoyd's widened to write) are put back.
    envoyd = policy(agent, master, "envoyd")
    widened = envoyd["Rules"].replace('"read"', '"write"')
    assert consul_call(f"{agent.url}/v1/acl/policy/{envoyd['ID']}", "PUT", master,
                       {"Name": "envoyd", "Rules": widened})[0] == 200
    assert apply(tmp_path, agent, tokens) is True
    assert policy(agent, master, "envoyd")["Rules"] == envoyd["Rules"]
    assert apply(tmp_path, agent, tokens) is False
