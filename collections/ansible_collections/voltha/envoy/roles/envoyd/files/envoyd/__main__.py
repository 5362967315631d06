import sys

from ansible_collections.voltha.envoy.plugins.module_utils._envoyd.cli import main

if __name__ == "__main__":
    sys.exit(main())
