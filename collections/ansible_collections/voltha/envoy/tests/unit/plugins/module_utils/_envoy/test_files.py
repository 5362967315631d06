"""_envoy/files.py: atomic writes and the dynamic split of a bootstrap."""

import copy
import os
import stat

import pytest
import yaml

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.eds import EndpointNames
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import (
    CDS_FILE,
    CLUSTER_TYPE,
    LDS_FILE,
    LISTENER_TYPE,
    dynamic_files,
    endpoint_files_named,
    keep_good,
    prune_endpoint_files,
    sha256_text,
    split_dynamic,
    subscription_of,
    write_atomic,
    write_files,
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


def source(path):
    return {"path_config_source": {"path": path, "watched_directory": {"path": os.path.dirname(path)}},
            "resource_api_version": "V3"}


def test_split_dynamic(tmp_path):
    config = render("10.0.0.1", "10.0.0.2").config
    before = copy.deepcopy(config)
    directory = str(tmp_path)
    bootstrap, lds, cds, endpoints = split_dynamic(config, directory)
    assert config == before  # the input is not changed
    assert "static_resources" not in bootstrap
    assert bootstrap["admin"] == config["admin"]
    assert bootstrap["node"] == {"id": "envoyd", "cluster": "voltha"}
    for key, name in (("lds_config", LDS_FILE), ("cds_config", CDS_FILE)):
        assert bootstrap["dynamic_resources"][key] == source(os.path.join(directory, name))
    listeners = config["static_resources"]["listeners"]
    [cluster] = config["static_resources"]["clusters"]
    assert [r["@type"] for r in lds["resources"]] == [LISTENER_TYPE] * len(listeners)
    assert [{k: v for k, v in r.items() if k != "@type"} for r in lds["resources"]] == listeners
    # The static cluster becomes an EDS cluster whose endpoints come from a file of their own.
    [eds_cluster] = cds["resources"]
    assert list(eds_cluster)[0] == "@type" and eds_cluster["@type"] == CLUSTER_TYPE
    path = os.path.join(directory, "eds", "voltha-grpc@0.json")
    assert eds_cluster["type"] == "EDS" and eds_cluster["ignore_health_on_host_removal"] is True
    assert eds_cluster["eds_cluster_config"] == {"eds_config": source(path)}
    assert "load_assignment" not in eds_cluster
    assert {k: v for k, v in eds_cluster.items() if k not in ("@type", "type", "eds_cluster_config",
                                                              "ignore_health_on_host_removal")} == {
        k: v for k, v in cluster.items() if k not in ("type", "load_assignment")}
    assert endpoints == [(path, dict(cluster["load_assignment"], cluster_name="voltha-grpc"))]
    assert subscription_of(path) == "eds voltha-grpc"
    assert [subscription_of(os.path.join(directory, name)) for name in (CDS_FILE, LDS_FILE)] == ["cds", "lds"]
    # what is written must survive a YAML round trip
    assert yaml.safe_load(yaml.safe_dump(cds)) == cds


def test_endpoints_sharing_no_core_with_the_last_go_to_a_file_and_name_of_their_own(tmp_path):
    names = EndpointNames()
    first = split_dynamic(render("10.0.0.1", "10.0.0.2").config, str(tmp_path), names=names)
    again = split_dynamic(render("10.0.0.2", "10.0.0.3").config, str(tmp_path), names=names)
    moved = split_dynamic(render("10.0.0.7").config, str(tmp_path), names=names)
    assert [e[0] for e in first[3] + again[3]] == [str(tmp_path / "eds/voltha-grpc@0.json")] * 2
    [(path, assignment)] = moved[3]
    assert path == str(tmp_path / "eds/voltha-grpc@1.json") and assignment["cluster_name"] == "voltha-grpc/1"
    assert moved[2]["resources"][0]["eds_cluster_config"] == {"eds_config": source(path),
                                                              "service_name": "voltha-grpc/1"}
    assert subscription_of(path) == "eds voltha-grpc"


def test_a_cluster_name_is_quoted_in_its_file_name(tmp_path):
    config = {"static_resources": {"clusters": [{"name": "a/b@c", "load_assignment": {"endpoints": []}}]}}
    [(path, dummy)] = split_dynamic(config, str(tmp_path))[3]
    assert os.path.basename(path) == "a%2Fb%40c@0.json" and subscription_of(path) == "eds a/b@c"


def test_split_dynamic_keeps_other_static_resources_and_node():
    config = {"node": {"id": "mine"}, "static_resources": {"secrets": [{"name": "s"}], "clusters": [{"name": "c"}]}}
    bootstrap, lds, cds, endpoints = split_dynamic(config, "/d", node_id="x", node_cluster="y")
    assert bootstrap["static_resources"] == {"secrets": [{"name": "s"}]}
    assert bootstrap["node"] == {"id": "mine", "cluster": "y"}
    assert lds == {"resources": []} and endpoints == []
    assert cds == {"resources": [{"@type": CLUSTER_TYPE, "name": "c"}]}


def test_split_dynamic_empty_config():
    bootstrap, lds, cds, endpoints = split_dynamic({}, "/d")
    assert set(bootstrap) == {"node", "dynamic_resources"}
    assert lds == cds == {"resources": []} and endpoints == []


def test_endpoint_files_not_named_by_the_clusters_in_place_are_pruned(tmp_path):
    config = render("10.0.0.1").config
    names = EndpointNames()
    write_files(dynamic_files(str(tmp_path), "", config, names))
    old = tmp_path / "xds/eds/voltha-grpc@0.json"
    keep_good([str(old)])  # a kept copy goes with its file
    moved = dynamic_files(str(tmp_path), "", render("10.0.0.9").config, names)
    named = endpoint_files_named(str(tmp_path))
    assert named == [str(old)]  # the clusters in place name the old file: it stays until they are replaced
    assert prune_endpoint_files(str(tmp_path), named + [p for p, dummy in moved]) == []
    write_files(moved)
    (tmp_path / "xds/cds.json.good").unlink(missing_ok=True)
    removed = prune_endpoint_files(str(tmp_path), endpoint_files_named(str(tmp_path)))
    assert sorted(removed) == [str(old), str(old) + ".good"]
    assert os.listdir(tmp_path / "xds/eds") == ["voltha-grpc@1.json"]


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
