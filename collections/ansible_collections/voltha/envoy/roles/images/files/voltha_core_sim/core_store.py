"""Core stores: the devices of the stores this core serves, in memory and persisted in Consul's KV.

As in VOLTHA 1.x, each core store is named by a prefix and lives in Consul under the data path,
the directory of the assignment key::

    service/voltha/data/core/assignment                    the assignment: store prefix -> core
    service/voltha/data/core/<prefix>/devices/<device id>  one device, protobuf JSON

The core that the assignment names for a store serves it from memory and is its only writer. Every
change is written to Consul before the call returns, through one writer thread that batches
changes into transactions; while Consul does not answer, calls do not wait for it (after one
``persist_wait``) and the writer catches up when Consul is back. A store the core gains is loaded
from Consul. Any store can be read from Consul directly, which is how a core answers for a store
whose core died before the store moved. A Consul that lost its data (a dev agent restarted) gets
the stores back from the cores that serve them (``resync_every``).

Without Consul (``settings`` None) the core serves its home store from memory only.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time

from .devices import from_json, store_of, to_json
from .election import txn_put

DEVICES = "devices"


def data_root(assignment_key: str) -> str:
    """The data path the stores live under: the assignment key's directory."""
    return assignment_key.rsplit("/", 1)[0] if "/" in assignment_key else ""


class _Store:
    def __init__(self):
        self.devices: dict = {}
        self.loaded = False


class _Write:
    __slots__ = ("key", "value", "done")

    def __init__(self, key, value):
        self.key, self.value, self.done = key, value, threading.Event()


class CoreStores:
    def __init__(self, core_id: str, home: str, root: str = "", settings=None, logger=None,
                 persist_wait: float = 0.5, read_timeout: float = 1.0, resync_every: float = 5.0):
        self.core_id = core_id
        self.home = home
        self.root = root.strip("/")
        self.settings = settings
        self.log = logger or logging.getLogger("voltha_core_sim.store")
        self.persist_wait = persist_wait
        self.resync_every = resync_every
        self.lock = threading.Lock()
        self.stores: dict[str, _Store] = {home: _Store()}
        self.assigned: set[str] | None = None  # the stores the assignment gives us; None before it is known
        self._writes: queue.Queue = queue.Queue()
        self._behind = threading.Event()  # the writer has failed and not caught up: calls do not wait
        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._pending = 0  # changes not yet in Consul
        self._deleted: set[str] = set()  # deleted since the last resync: not to be adopted back
        self._load_wanted = threading.Event()
        self._local = threading.local()
        self._read_settings = None
        if settings is not None:
            self._read_settings = copy.copy(settings)
            self._read_settings.timeout = read_timeout
        else:
            self.stores[home].loaded = True
        self.threads: list[threading.Thread] = []

    # Keys.

    def store_path(self, prefix: str) -> str:
        return f"{self.root}/{prefix}/{DEVICES}/" if self.root else f"{prefix}/{DEVICES}/"

    def device_key(self, device_id: str) -> str:
        return self.store_path(store_of(device_id)) + device_id

    # What we serve.

    def serves(self, prefix: str) -> bool:
        with self.lock:
            return prefix in self.stores

    def served(self) -> list[str]:
        with self.lock:
            return sorted(self.stores)

    def create_prefix(self) -> str | None:
        """The store new devices go to: the home store while we serve it, else the first we serve;
        None when we serve none (another core holds our home for now)."""
        with self.lock:
            if self.home in self.stores:
                return self.home
            return min(self.stores) if self.stores else None

    def set_assigned(self, prefixes) -> None:
        """The stores the assignment gives us (the home store stays ours until it names another core
        for it). Stores gained are loaded from Consul; stores lost are dropped once written out."""
        prefixes = set(prefixes)
        with self.lock:
            self.assigned = prefixes
            wanted = set(prefixes)
            gained = [p for p in wanted if p not in self.stores]
            lost = [p for p in self.stores if p not in wanted]
            for prefix in gained:
                self.stores[prefix] = _Store()
            for prefix in lost:
                del self.stores[prefix]
        for prefix in gained:
            self.log.info("serving core store %s", prefix)
        for prefix in lost:
            self.log.info("core store %s moved to another core", prefix)
        if gained and self.settings is not None:
            self._wake_loader()

    def assignment_changed(self, mapping: dict, me: tuple) -> None:
        """``mapping``: prefix -> (core id, host, port) from the assignment; ``me``: ours."""
        mine = {prefix for prefix, core in mapping.items() if core == me}
        holder = mapping.get(self.home)
        # Our home stays ours until the assignment gives it to another core: not yet assigned (we
        # just started), or assigned to another run of this core (a stale entry, or the run a rolling
        # update replaces), whose devices reach us through Consul (read on a miss, adopted by _resync).
        if holder is None or holder[0] == me[0]:
            mine.add(self.home)
        self.set_assigned(mine)

    # Devices in memory.

    def local(self, prefix: str, device_id: str):
        """(served, device): served False when we do not serve the store; device None when unknown
        to memory (then the caller reads Consul: the store may still be loading, or another run of
        this core wrote the device)."""
        with self.lock:
            store = self.stores.get(prefix)
            if store is None:
                return False, None
            return True, store.devices.get(device_id)

    def deleted(self, device_id: str) -> bool:
        """Whether we deleted the device lately (Consul may not have taken the delete yet)."""
        with self.lock:
            return device_id in self._deleted

    def loaded(self, prefix: str) -> bool:
        with self.lock:
            store = self.stores.get(prefix)
            return store is not None and store.loaded

    def put(self, device) -> bool:
        """Store a device in its store, which we serve; False when we no longer do. Persisted."""
        prefix = store_of(device.id)
        with self.lock:
            store = self.stores.get(prefix)
            if store is None:
                return False
            store.devices[device.id] = device
        self._persist(self.device_key(device.id), to_json(device))
        return True

    def delete(self, device_id: str) -> bool:
        prefix = store_of(device_id)
        with self.lock:
            store = self.stores.get(prefix)
            if store is None:
                return False
            store.devices.pop(device_id, None)
            self._deleted.add(device_id)
        self._persist(self.device_key(device_id), None)
        return True

    def local_devices(self, prefixes=None) -> tuple[list, list[str]]:
        """(devices of the loaded stores we serve among ``prefixes`` (all when None), the prefixes
        among them still loading)."""
        with self.lock:
            chosen = [p for p in self.stores if prefixes is None or p in prefixes]
            devices = [d for p in chosen if self.stores[p].loaded for d in self.stores[p].devices.values()]
            loading = [p for p in chosen if not self.stores[p].loaded]
            pending = {p: list(self.stores[p].devices.values()) for p in loading}
        return devices + [d for p in loading for d in pending[p]], loading

    def count(self) -> int:
        with self.lock:
            return sum(len(store.devices) for store in self.stores.values())

    # Consul reads, for any store.

    def _kv(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._read_settings.client().kv
        return client

    def read(self, device_id: str):
        """The device as Consul holds it; None when it has no such device. Raises when Consul fails
        or there is no Consul."""
        if self.settings is None:
            return None
        item = self._kv().get(self.device_key(device_id))[1]
        return from_json(item["Value"]) if item and item.get("Value") else None

    def read_store(self, prefix: str) -> list:
        if self.settings is None:
            return []
        items = self._kv().get(self.store_path(prefix), recurse=True)[1]
        return [from_json(item["Value"]) for item in items or () if item.get("Value")]

    def stores_in_consul(self) -> list[str]:
        """The prefixes of the stores Consul holds devices of."""
        if self.settings is None:
            return []
        return list_stores(self._kv(), self.root)

    # Writing to Consul.

    def _persist(self, key: str, value) -> None:
        if self.settings is None:
            return
        write = _Write(key, value)
        with self.lock:
            self._pending += 1
        self._writes.put(write)
        if not self._behind.is_set() and not write.done.wait(self.persist_wait):
            self._behind.set()  # Consul is slow or gone: later calls do not wait until it is back
            self.log.warning("Consul did not take a device write within %.2fs; writing in the background",
                             self.persist_wait)

    def _write_loop(self) -> None:
        client = self.settings.client()
        failures = 0
        batch: list[_Write] = []
        while not (self._stop.is_set() and (not batch and self._writes.empty()
                                            or time.monotonic() > self._stop_deadline)):
            if not batch:
                try:
                    batch.append(self._writes.get(timeout=0.2))
                except queue.Empty:
                    continue
                while len(batch) < 64:
                    try:
                        batch.append(self._writes.get_nowait())
                    except queue.Empty:
                        break
            try:
                txn_put(client, [_operation(w.key, w.value) for w in batch])
            except Exception as error:
                failures += 1
                self._behind.set()
                if failures == 1:
                    self.log.warning("device writes to Consul fail (%s: %s); %d waiting, retrying",
                                     type(error).__name__, " ".join(str(error).split())[:200], len(batch))
                time.sleep(min(0.5, 0.05 * 2 ** min(failures, 4)))
                continue
            for write in batch:
                write.done.set()
            with self.lock:
                self._pending -= len(batch)
                caught_up = self._pending == 0
            batch = []
            if failures:
                self.log.info("device writes to Consul work again after %d failed attempt(s)", failures)
                failures = 0
            if caught_up:
                self._behind.clear()

    def flush(self, timeout: float) -> bool:
        """Wait until every change so far is in Consul; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.settings is not None and time.monotonic() < deadline:
            with self.lock:
                if self._pending == 0:
                    return True
            time.sleep(0.02)
        return self.settings is None

    # Loading gained stores, and putting back what Consul lost.

    def _wake_loader(self) -> None:
        self._load_wanted.set()

    def _load_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._load_wanted.wait(self.resync_every)
            self._load_wanted.clear()
            if self._stop.is_set():
                return
            try:
                self._load_pending()
                self._resync()
                failures = 0
            except Exception as error:
                failures += 1
                if failures == 1:
                    self.log.warning("could not read core stores from Consul (%s: %s); retrying",
                                     type(error).__name__, " ".join(str(error).split())[:200])
                self._stop.wait(min(0.5, 0.05 * 2 ** min(failures, 4)))
                self._load_wanted.set()

    def _load_pending(self) -> None:
        for prefix in self.served():
            if self.loaded(prefix):
                continue
            devices = self.read_store(prefix)
            with self.lock:
                store = self.stores.get(prefix)
                if store is None:
                    continue
                for device in devices:
                    store.devices.setdefault(device.id, device)
                store.loaded = True
                count = len(store.devices)
            self.log.info("loaded core store %s from Consul: %d device(s)", prefix, count)

    def _resync(self) -> None:
        """Make Consul and memory agree on our stores: write back the devices Consul lacks (it lost
        its data), adopt the devices only Consul has (written by another run of this core)."""
        if self._behind.is_set():
            return
        with self.lock:
            deleted, self._deleted = self._deleted, set()
        for prefix in self.served():
            if not self.loaded(prefix):
                continue
            keys = self._kv().get(self.store_path(prefix), keys=True)[1]
            present = {key.rsplit("/", 1)[-1] for key in keys or ()}
            with self.lock:
                store = self.stores.get(prefix)
                if store is None:
                    continue
                missing = [d for i, d in store.devices.items() if i not in present]
                extra = [i for i in present if i not in store.devices and i not in deleted]
            if missing:
                self.log.warning("Consul lacks %d device(s) of core store %s; writing them back", len(missing), prefix)
                with self.lock:
                    self._pending += len(missing)
                for device in missing:
                    self._writes.put(_Write(self.device_key(device.id), to_json(device)))
            adopted = [d for d in (self.read(i) for i in extra) if d is not None]
            with self.lock:
                store = self.stores.get(prefix)
                for device in adopted if store is not None else ():
                    if device.id not in self._deleted:
                        store.devices.setdefault(device.id, device)
            if adopted:
                self.log.info("adopted %d device(s) of core store %s written by another run", len(adopted), prefix)

    def start(self) -> CoreStores:
        if self.settings is None:
            return self
        self._load_wanted.set()
        self.threads = [threading.Thread(target=self._write_loop, name="store-writer", daemon=True),
                        threading.Thread(target=self._load_loop, name="store-loader", daemon=True)]
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Write out what is left (up to ``timeout``), then stop the threads."""
        self.flush(timeout)
        self._stop_deadline = time.monotonic() + 0.5
        self._stop.set()
        self._load_wanted.set()
        for thread in self.threads:
            thread.join(timeout)


def _operation(key: str, value) -> dict:
    import base64

    if value is None:
        return {"KV": {"Verb": "delete", "Key": key}}
    return {"KV": {"Verb": "set", "Key": key, "Value": base64.b64encode(value.encode("utf-8")).decode("ascii")}}


def list_stores(kv, root: str) -> list[str]:
    """The prefixes under ``root`` that hold devices (``<root>/<prefix>/devices/...``), via py-consul's kv."""
    base = f"{root}/" if root else ""
    keys = kv.get(base, keys=True, separator="/")[1]
    prefixes = []
    for key in keys or ():
        if key.endswith("/") and key != base:
            prefix = key[len(base):-1]
            if prefix and "/" not in prefix:
                prefixes.append(prefix)
    return sorted(prefixes)
