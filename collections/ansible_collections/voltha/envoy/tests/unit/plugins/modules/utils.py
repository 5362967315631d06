"""Run an Ansible module's main() in-process with given arguments and catch what it exits with."""

from __future__ import annotations

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class Exited(Exception):
    """What exit_json or fail_json was called with."""

    def __init__(self, result, failed):
        super().__init__(result.get("msg"))
        self.result, self.failed = result, failed


def catch_module_exits(monkeypatch) -> None:
    """Make exit_json and fail_json raise Exited instead of printing and leaving the process."""

    def exit_json(self, **kwargs):
        raise Exited(kwargs, failed=False)

    def fail_json(self, msg, **kwargs):
        raise Exited(dict(kwargs, msg=msg), failed=True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


class ModuleHarness:
    def __init__(self, main):
        self.main = main

    def run(self, args, check=False, diff=False) -> Exited:
        args = dict(args)
        if check:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args), pytest.raises(Exited) as info:
            self.main()
        return info.value

    def ok(self, args, **kwargs) -> dict:
        done = self.run(args, **kwargs)
        assert not done.failed, done.result["msg"]
        return done.result

    def failed(self, args, **kwargs) -> str:
        done = self.run(args, **kwargs)
        assert done.failed, done.result
        return done.result["msg"]
