# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""_debian/packages.py: what apt-get and dpkg-deb are asked, and the cache that spares a download."""

import os

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._debian.packages import PackageFetchError, download, unpack


class FakeApt:
    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail

    def __call__(self, argv, cwd):
        self.calls.append(argv)
        if self.fail and self.fail in argv:
            return 100, "", "E: Unable to locate package nosuch"
        if "download" in argv:
            for package in argv[argv.index("download") + 1:]:
                open(os.path.join(cwd, "%s_1.0_amd64.deb" % package), "w").close()
        return 0, "", ""


def test_downloads_only_what_the_cache_lacks(tmp_path):
    apt = FakeApt()
    (tmp_path / "consul_1.8.7_amd64.deb").write_text("")
    debs, fetched = download(["consul", "prometheus"], "bullseye", "http://deb.example/debian/", str(tmp_path), apt)
    assert fetched == ["prometheus"] and sorted(debs) == ["consul", "prometheus"]
    assert apt.calls[0][-1] == "update" and apt.calls[1][-2:] == ["download", "prometheus"]
    assert (tmp_path / "sources.list").read_text() == \
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian bullseye main\n"
    assert any(a.startswith("Dir::State::Lists=%s" % tmp_path) for a in apt.calls[0])
    apt.calls = []
    assert download(["consul", "prometheus"], "bullseye", "http://x/debian", str(tmp_path), apt)[1] == []
    assert apt.calls == []  # all cached: apt is not run


def test_a_failure_names_the_command_and_apt_says_why(tmp_path):
    with pytest.raises(PackageFetchError, match="apt-get download nosuch failed .exit 100.: E: Unable to locate"):
        download(["nosuch"], "bookworm", "http://x/debian", str(tmp_path), FakeApt(fail="download"))


def test_unpack_runs_dpkg_deb_per_package(tmp_path):
    apt = FakeApt()
    unpack(["/c/a.deb", "/c/b.deb"], str(tmp_path / "root"), apt)
    assert apt.calls == [["dpkg-deb", "-x", "/c/a.deb", str(tmp_path / "root")],
                         ["dpkg-deb", "-x", "/c/b.deb", str(tmp_path / "root")]]
