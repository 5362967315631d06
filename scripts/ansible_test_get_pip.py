"""Offline stand-in for the get-pip.py bootstrap that ansible-test downloads.

make setup installs this file as ~/.ansible/test/cache/get_pip_24_2.py, the name ansible-test 2.19
looks for before it downloads anything. ansible-test runs it inside a new `python -m venv
--without-pip` venv with arguments like `--disable-pip-version-check pip==24.2 --no-setuptools
--no-wheel`, and passes on only PATH, HOME and LC_ALL (so PIP_CERT and pip.conf do not reach pip):
  1. bootstrap pip from the interpreter's bundled wheel (ensurepip, no network),
  2. install the requested packages from PyPI trusting the machine's CA bundle,
  3. append that bundle to the venv's vendored certifi so later installs verify TLS too.
Standard library only.
"""
import glob
import os
import subprocess
import sys

CA_BUNDLE = os.environ.get('ANSIBLE_TEST_CA_BUNDLE', '/etc/ssl/certs/ca-certificates.crt')
MARKER = '# --- appended by get_pip stand-in ---\n'


def run(cmd):
    proc = subprocess.run(cmd)
    if proc.returncode:
        sys.exit(proc.returncode)


def patch_certifi():
    if not os.path.isfile(CA_BUNDLE):
        return
    pattern = os.path.join(sys.prefix, 'lib*', 'python*', 'site-packages', 'pip', '_vendor', 'certifi', 'cacert.pem')
    with open(CA_BUNDLE) as src:
        extra = src.read()
    for pem in glob.glob(pattern):
        with open(pem) as f:
            if MARKER in f.read():
                continue
        with open(pem, 'a') as f:
            f.write('\n' + MARKER + extra)


def main():
    args = sys.argv[1:]
    no_setuptools = '--no-setuptools' in args
    no_wheel = '--no-wheel' in args
    args = [a for a in args if a not in ('--no-setuptools', '--no-wheel')]

    env_cmd = [sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip']
    run(env_cmd)
    patch_certifi()  # old pip from ensurepip: trust the machine CA too

    pip = [sys.executable, '-m', 'pip']
    cert = ['--cert', CA_BUNDLE] if os.path.isfile(CA_BUNDLE) else []
    packages = [a for a in args if not a.startswith('-')]
    if packages:
        run(pip + ['install'] + cert + args)
    patch_certifi()  # the freshly installed pip has a new certifi bundle

    # mimic get-pip.py: don't leave setuptools/wheel behind when asked not to
    leftovers = []
    if no_setuptools:
        leftovers.append('setuptools')
    if no_wheel:
        leftovers.append('wheel')
    if leftovers:
        subprocess.run(pip + ['uninstall', '-y', '-q'] + leftovers,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == '__main__':
    main()
