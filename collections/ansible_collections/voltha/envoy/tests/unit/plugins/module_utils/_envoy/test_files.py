"""_envoy/files.py: atomic writes and the dynamic split of a bootstrap."""

import copy
import os
import stat

import pytest
import yaml

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import (
    CDS_FILE,
    CLUSTER_TYPE,
    LDS_FILE,
    LISTENER_TYPE,
    sha256_text,
    split_dynamic,
    write_atomic,
)
from ansible_collections.voltha.envoy.tests.unit.plugins.module_utils._envoy.rendered import (
    render,
)

# ------------------------------------------------------------------ write_atomic


def test_write_atomic_writes_then_skips_unchanged(tmp_path):
    path = str(tmp_path / "envoy.yaml")
    assert write_atomic(path, "a: 1\n") is True
    assert open(path).read() == "a: 1\n"
    inode, mtime = os.stat(path).st_ino, os.stat(path).st_mtime_ns
    assert write_atomic(path, "a: 1\n") is False
    assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns) == (inode, mtime)  # not touched
    assert write_atomic(path, "a: 2\n") is True
    assert open(path).read() == "a: 2\n"
    assert os.stat(path).st_ino != inode  # replaced by rename, not rewritten in place
    assert os.listdir(str(tmp_path)) == ["envoy.yaml"]


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640])
def test_write_atomic_mode(tmp_path, mode):
    path = str(tmp_path / "f")
    write_atomic(path, "x", mode=mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


def test_write_atomic_default_mode_and_unicode(tmp_path):
    path = str(tmp_path / "f")
    text = 'hostname: "é😀\\u0000"\n'
    assert write_atomic(path, text) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert open(path, "rb").read() == text.encode("utf-8")
    assert write_atomic(path, text) is False


def test_write_atomic_replaces_a_symlink_not_its_target(tmp_path):
    target = tmp_path / "target"
    target.write_text("old")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert write_atomic(str(link), "new") is True
    assert target.read_text() == "old"
    assert not link.is_symlink() and link.read_text() == "new"


def test_write_atomic_failure_leaves_no_temp_file(tmp_path):
    path = tmp_path / "dir"
    path.mkdir()
    (path / "inside").write_text("keep")
    with pytest.raises(OSError):
        write_atomic(str(path), "x")  # cannot rename a file over a non-empty directory
    assert sorted(os.listdir(str(tmp_path))) == ["dir"]
    assert (path / "inside").read_text() == "keep"


def test_write_atomic_missing_directory(tmp_path):
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "no" / "f"), "x")
    assert os.listdir(str(tmp_path)) == []


def test_write_atomic_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert write_atomic("rel.yaml", "x") is True
    assert (tmp_path / "rel.yaml").read_text() == "x"
    assert os.listdir(str(tmp_path)) == ["rel.yaml"]


def test_write_atomic_sees_line_ending_differences(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a: 1\r\n")
    write_atomic(str(path), "a: 1\n")
    assert path.read_bytes() == b"a: 1\n"


def test_write_atomic_overwrites_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"\xff\xfe garbage")
    assert write_atomic(str(path), "a: 1\n") is True
    assert path.read_text() == "a: 1\n"


def test_sha256_text():
    assert sha256_text("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_text("é") != sha256_text("e")


# ------------------------------------------------------------------ config_shape


def test_split_dynamic(tmp_path):
    config = render("10.0.0.1", "10.0.0.2").config
    before = copy.deepcopy(config)
    directory = str(tmp_path)
    bootstrap, lds, cds = split_dynamic(config, directory)
    assert config == before  # the input is not changed
    assert "static_resources" not in bootstrap
    assert bootstrap["admin"] == config["admin"]
    assert bootstrap["node"] == {"id": "envoyd", "cluster": "voltha"}
    for key, name in (("lds_config", LDS_FILE), ("cds_config", CDS_FILE)):
        assert bootstrap["dynamic_resources"][key] == {
            "path_config_source": {"path": os.path.join(directory, name), "watched_directory": {"path": directory}},
            "resource_api_version": "V3"}
    listeners = config["static_resources"]["listeners"]
    clusters = config["static_resources"]["clusters"]
    assert [r["@type"] for r in lds["resources"]] == [LISTENER_TYPE] * len(listeners)
    assert [r["@type"] for r in cds["resources"]] == [CLUSTER_TYPE] * len(clusters)
    assert [{k: v for k, v in r.items() if k != "@type"} for r in lds["resources"]] == listeners
    assert [{k: v for k, v in r.items() if k != "@type"} for r in cds["resources"]] == clusters
    assert list(cds["resources"][0])[0] == "@type"
    # what is written must survive a YAML round trip
    assert yaml.safe_load(yaml.safe_dump(cds)) == cds


def test_split_dynamic_keeps_other_static_resources_and_node():
    config = {"node": {"id": "mine"}, "static_resources": {"secrets": [{"name": "s"}], "clusters": [{"name": "c"}]}}
    bootstrap, lds, cds = split_dynamic(config, "/d", node_id="x", node_cluster="y")
    assert bootstrap["static_resources"] == {"secrets": [{"name": "s"}]}
    assert bootstrap["node"] == {"id": "mine", "cluster": "y"}
    assert lds == {"resources": []}
    assert cds == {"resources": [{"@type": CLUSTER_TYPE, "name": "c"}]}


def test_split_dynamic_empty_config():
    bootstrap, lds, cds = split_dynamic({}, "/d")
    assert set(bootstrap) == {"node", "dynamic_resources"}
    assert lds == cds == {"resources": []}


# ------------------------------------------------------------------ EnvoyValidator with a fake envoy


def test_kept_files_are_put_back_whole(tmp_path):
    from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import keep_good, restore_good

    cds, lds, missing = tmp_path / "cds.json", tmp_path / "lds.json", str(tmp_path / "never.json")
    cds.write_text("good cds")
    lds.write_text("good lds")
    paths = [str(cds), str(lds), missing]
    keep_good(paths)
    write_atomic(str(cds), "refused cds")
    assert restore_good(paths) == [str(cds), str(lds)]
    assert (cds.read_text(), lds.read_text()) == ("good cds", "good lds")
    assert not os.path.exists(missing) and restore_good(paths) == []
