"""Which Debian archive debootstrap and the private apt lists fetch from."""

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._debian.archive import MirrorNotFound, find_mirror


def test_environment_wins(tmp_path):
    assert find_mirror({"DEBIAN_MIRROR": "http://m.example/debian/"}, str(tmp_path)) == "http://m.example/debian"


def test_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://a.example/debian-security\n\nTypes: deb\nURIs: http://a.example/debian\n")
    assert find_mirror({}, str(tmp_path)) == "http://a.example/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://b.example/debian/ bookworm main\n")
    assert find_mirror({}, str(tmp_path)) == "http://b.example/debian"


def test_none_found_says_what_to_set(tmp_path):
    with pytest.raises(MirrorNotFound, match="DEBIAN_MIRROR"):
        find_mirror({}, str(tmp_path))
