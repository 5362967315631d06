"""Unit tests for the check-and-set assignment store (assignment_store.py) on a fake Consul KV."""

import json

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    AssignmentError,
    Core,
    dump_assignment,
)
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import (
    AssignmentConflictError,
    AssignmentStore,
    AssignmentStoreError,
    StoredAssignmentInvalid,
    cores_to_list,
    normalize_cores,
    normalize_prefixes,
    pretty,
)
from ansible_collections.voltha.envoy.tests.unit.plugins.module_utils._assignment.fake_kv import FakeKV

KEY = "test/assignment"
ONE = {"vcore1": {"id": "core-1", "host": "10.0.0.1", "port": 50556}}
TWO = {"vcore1": {"id": "core-1", "host": "10.0.0.1", "port": 50556},
       "vcore2": {"id": "core-2", "host": "10.0.0.2", "port": 50557}}


@pytest.fixture
def kv():
    return FakeKV()


def store(kv, **kwargs):
    return AssignmentStore(kv, KEY, **kwargs)


# normalize_cores / normalize_prefixes


def test_list_and_dict_shapes_are_the_same():
    as_list = [{"prefix": "vcore2", "id": "core-2", "host": "10.0.0.2", "port": 50557},
               {"prefix": "vcore1", "id": "core-1", "host": "10.0.0.1", "port": 50556}]
    assert normalize_cores(as_list) == normalize_cores(TWO) == TWO


def test_port_is_optional_and_digit_strings_become_ints():
    assert normalize_cores({"a": {"id": "x", "host": "h"}}) == {"a": {"id": "x", "host": "h"}}
    assert normalize_cores({"a": {"id": "x", "host": "h", "port": None}}) == {"a": {"id": "x", "host": "h"}}
    assert normalize_cores([{"prefix": "a", "id": "x", "host": "h", "port": " 5 "}])["a"]["port"] == 5
    assert normalize_cores({"a": {"id": "x", "host": "h", "port": "5x"}})["a"]["port"] == "5x"  # parse fails it


@pytest.mark.parametrize("cores, words", [
    ("vcore1", ["must be a list of cores or a dict"]),
    ([{"id": "x", "host": "h"}], ["cores[0]", "'prefix' is missing"]),
    (["vcore1"], ["cores[0]", "must be a dict"]),
    ([{"prefix": "", "id": "x", "host": "h"}], ["prefix must be a non-empty string"]),
    ([{"prefix": "a", "id": "x", "host": "h"}, {"prefix": "a", "id": "y", "host": "h"}], ['"a"', "more than once"]),
    ({"a": {"id": "x", "host": "h", "prot": 1}}, ['core "a"', "'prot'", "only id, host and port"]),
])
def test_bad_shapes_are_named(cores, words):
    with pytest.raises(AssignmentError) as info:
        normalize_cores(cores)
    for word in words:
        assert word in str(info.value)


def test_prefixes():
    assert normalize_prefixes(["a", "b", "a"]) == ["a", "b"]
    with pytest.raises(AssignmentError, match="must be a list of prefixes"):
        normalize_prefixes("a")
    with pytest.raises(AssignmentError, match="non-empty string"):
        normalize_prefixes(["a", ""])


def test_helpers():
    cores = (Core("b", "2", "h", 2), Core("a", "1", "h", 1))
    assert [c["prefix"] for c in cores_to_list(cores)] == ["a", "b"]
    assert pretty(None) == ""
    assert json.loads(pretty(cores)) == {"a": {"id": "1", "host": "h", "port": 1},
                                         "b": {"id": "2", "host": "h", "port": 2}}


@pytest.mark.parametrize("key", ["", "/service/x", None])
def test_bad_key(key):
    with pytest.raises(AssignmentStoreError, match="key"):
        AssignmentStore(FakeKV(), key)


# read


def test_read_missing_valid_invalid(kv):
    snap = store(kv).read()
    assert (snap.exists, snap.modify_index, snap.cores, snap.error, snap.index) == (False, 0, None, None, 10)
    kv.raw_put(KEY, json.dumps(ONE))
    snap = store(kv).read()
    assert snap.exists and snap.modify_index == 11 and snap.cores == (Core("vcore1", "core-1", "10.0.0.1", 50556),)
    kv.raw_put(KEY, '{"vcore1": {"id": "core-1", "host": "not a host"}}')
    snap = store(kv).read()
    assert snap.cores is None and "'host'" in str(snap.error)
    with pytest.raises(StoredAssignmentInvalid, match="not a valid assignment.*host"):
        store(kv).read_valid()


def test_read_null_value_is_invalid(kv):
    kv.data[KEY] = (None, 5)
    snap = store(kv).read()
    assert snap.exists and "empty" in str(snap.error)


def test_stored_port_less_cores_use_default_port(kv):
    kv.raw_put(KEY, '{"vcore1": {"id": "core-1", "host": "10.0.0.1"}}')
    assert store(kv, default_port=7).read().cores[0].port == 7


# set


def test_set_creates_with_cas_zero_and_canonical_json(kv):
    outcome = store(kv).set(TWO)
    assert outcome.changed and outcome.written and outcome.conflicts == 0
    assert kv.puts == [(KEY, dump_assignment(outcome.after), 0)]
    assert kv.data[KEY][0] == dump_assignment(outcome.after).encode()
    assert outcome.index == kv.data[KEY][1]


def test_set_again_is_unchanged(kv):
    store(kv).set(TWO)
    outcome = store(kv).set(TWO)
    assert not outcome.changed and len(kv.puts) == 1
    assert outcome.index == kv.data[KEY][1]


def test_reformatted_stored_text_is_not_rewritten(kv):
    kv.raw_put(KEY, '{"vcore2": {"port": 50557, "host": "10.0.0.2", "id": "core-2"},\n "vcore1": '
                    '{"host": "10.0.0.1", "id": "core-1"}}')  # reordered, spaced, port left to the default
    outcome = store(kv).set(TWO)
    assert not outcome.changed and kv.puts == []


def test_set_replaces_an_invalid_value(kv):
    kv.raw_put(KEY, "not json")
    outcome = store(kv).set(ONE)
    assert outcome.changed and outcome.before.error is not None
    assert kv.stored() == ONE


def test_set_refuses_a_bad_core_before_reading(kv):
    kv.get = None  # any read would fail
    with pytest.raises(AssignmentError) as info:
        store(kv).set({"vcore1": {"id": "core-1", "host": "10.0.0.1", "port": 70000}})
    assert (info.value.prefix, info.value.field, info.value.value) == ("vcore1", "port", 70000)
    assert '"vcore1"' in str(info.value) and "'port'" in str(info.value) and "70000" in str(info.value)


def test_set_refuses_duplicate_ids(kv):
    with pytest.raises(AssignmentError, match="duplicates"):
        store(kv).set({"a": {"id": "x", "host": "h"}, "b": {"id": "x", "host": "g"}})


def test_check_mode_writes_nothing(kv):
    outcome = store(kv).set(ONE, check_mode=True)
    assert outcome.changed and not outcome.written and kv.puts == [] and KEY not in kv.data
    kv.raw_put(KEY, json.dumps(ONE))
    assert not store(kv).set(ONE, check_mode=True).changed
    assert store(kv).set(TWO, check_mode=True).changed
    assert store(kv).delete(check_mode=True).changed and KEY in kv.data and kv.deletes == []


# add / remove


def test_add_to_missing_key_creates_it(kv):
    outcome = store(kv).change(add=ONE)
    assert outcome.changed and kv.stored() == ONE and kv.puts[0][2] == 0


def test_add_updates_by_prefix_and_keeps_the_others(kv):
    store(kv).set(TWO)
    store(kv).change(add={"vcore2": {"id": "core-2b", "host": "10.0.0.22"}, "vcore3": {"id": "c3", "host": "h3"}})
    stored = kv.stored()
    assert stored["vcore1"] == TWO["vcore1"]
    assert stored["vcore2"] == {"id": "core-2b", "host": "10.0.0.22", "port": 50556}
    assert stored["vcore3"]["host"] == "h3"


def test_add_same_is_unchanged_and_remove_unknown_is_unchanged(kv):
    store(kv).set(TWO)
    assert not store(kv).change(add={"vcore1": TWO["vcore1"]}).changed
    assert not store(kv).change(remove=["vcore9"]).changed
    assert len(kv.puts) == 1


def test_add_and_remove_together(kv):
    store(kv).set(TWO)
    store(kv).change(add={"vcore3": {"id": "core-3", "host": "10.0.0.3"}}, remove=["vcore1"])
    assert sorted(kv.stored()) == ["vcore2", "vcore3"]


def test_add_and_remove_the_same_prefix_is_refused(kv):
    with pytest.raises(AssignmentStoreError, match='"vcore1".*both added and removed'):
        store(kv).change(add=ONE, remove=["vcore1"])


def test_removing_the_last_core_says_use_absent(kv):
    store(kv).set(ONE)
    with pytest.raises(AssignmentStoreError, match="no cores.*state=absent"):
        store(kv).change(remove=["vcore1"])
    assert kv.stored() == ONE


def test_remove_from_missing_key_is_a_no_op(kv):
    outcome = store(kv).change(remove=["vcore1"])
    assert not outcome.changed and outcome.after is None and kv.puts == []


def test_add_into_invalid_value_fails(kv):
    kv.raw_put(KEY, '{"vcore1": {"id": "core-1"}}')
    with pytest.raises(StoredAssignmentInvalid, match="cannot add or remove cores.*'host' is missing"):
        store(kv).change(add={"vcore2": {"id": "core-2", "host": "h"}})
    assert kv.puts == []


def test_add_with_bad_core_fails_before_reading(kv):
    kv.get = None
    with pytest.raises(AssignmentError, match="core \"vcore9\": field 'host'"):
        store(kv).change(add={"vcore9": {"id": "x", "host": "bad host"}})


def test_add_with_duplicate_id_of_stored_core_fails(kv):
    store(kv).set(TWO)
    with pytest.raises(AssignmentError, match="duplicates"):
        store(kv).change(add={"vcore3": {"id": "core-1", "host": "h"}})


# delete


def test_delete(kv):
    assert not store(kv).delete().changed
    store(kv).set(ONE)
    modify = kv.data[KEY][1]
    outcome = store(kv).delete()
    assert outcome.changed and KEY not in kv.data and kv.deletes[-1] == (KEY, modify)
    assert outcome.after is None


def test_delete_invalid_value(kv):
    kv.raw_put(KEY, "garbage")
    assert store(kv).delete().changed and KEY not in kv.data


# compare-and-set conflicts


def writer_that_changes(times, value=None):
    """Another writer that writes `times` times, each right between our read and our write."""
    value = json.dumps(TWO) if value is None else value
    left = [times]

    def before_write(kv):
        if left[0] > 0:
            left[0] -= 1
            kv.raw_put(KEY, value)
    return before_write


def test_conflict_is_retried_and_recomputed(kv):
    store(kv).set(ONE)
    other = {"vcore7": {"id": "core-7", "host": "10.0.0.7", "port": 50556}}
    kv.before_write = writer_that_changes(1, json.dumps(other))
    outcome = store(kv).change(add={"vcore3": {"id": "core-3", "host": "10.0.0.3"}})
    assert outcome.changed and outcome.conflicts == 1
    # recomputed on the other writer's value: its core is kept, ours is added, vcore1 (gone there) stays gone
    assert sorted(kv.stored()) == ["vcore3", "vcore7"]
    assert [cas for _dummy, _dummy, cas in kv.puts] == [0, 11, 12]  # create, lost, retried on the new index


def test_conflict_that_makes_our_write_unneeded(kv):
    kv.before_write = writer_that_changes(1, json.dumps(ONE))
    outcome = store(kv).set(ONE)
    assert not outcome.changed and outcome.conflicts == 1 and len(kv.puts) == 1


def test_conflicts_past_retries_fail_naming_the_key(kv):
    store(kv).set(ONE)
    kv.before_write = writer_that_changes(100)
    with pytest.raises(AssignmentConflictError) as info:
        store(kv).set({"vcore5": {"id": "core-5", "host": "h5"}}, retries=2)
    assert KEY in str(info.value) and "another writer keeps changing it" in str(info.value)
    assert info.value.conflicts == 3 and info.value.key == KEY
    assert len(kv.puts) == 1 + 3


def test_zero_retries(kv):
    kv.before_write = writer_that_changes(1)
    with pytest.raises(AssignmentConflictError):
        store(kv).set(ONE, retries=0)


def test_create_loses_to_a_concurrent_create(kv):
    """cas=0 means create only if absent: a key created in between is a conflict, then re-read."""
    kv.before_write = writer_that_changes(1, json.dumps(TWO))
    outcome = store(kv).change(add={"vcore3": {"id": "core-3", "host": "10.0.0.3"}})
    assert outcome.conflicts == 1 and sorted(kv.stored()) == ["vcore1", "vcore2", "vcore3"]
    assert kv.puts[0][2] == 0


def test_delete_conflict_is_retried(kv):
    store(kv).set(ONE)
    kv.before_write = writer_that_changes(2)
    outcome = store(kv).delete()
    assert outcome.changed and outcome.conflicts == 2 and KEY not in kv.data
