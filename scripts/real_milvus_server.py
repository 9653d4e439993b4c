"""Start a real Milvus standalone server from the PyPI `milvus` package on free loopback ports.

Runs under the package's own virtualenv (scripts/real-milvus.sh run DATA_DIR), never the operator's.
`milvus-server` itself takes only the gRPC port from the command line and picks the management port
(METRICS_PORT, 9091 upwards) alone, so this sets every port and reports them: one JSON line
{"proxy_port", "management_port", "pid"} on stdout once the server answers /healthz. SIGTERM or
SIGINT stops the server (the wrapper terminates its `milvus run standalone` child).

The embedded etcd listens on etcd's defaults (2379, 2380) unless given a config file of its own
(`ETCD_CONFIG_PATH`, as Milvus' standalone image does): it gets free ports too, so several servers,
or another etcd on the machine, do not collide.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from types import FrameType

from milvus import MilvusServer, MilvusServerConfig  # type: ignore[import-not-found]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(data_dir: str) -> None:
    server = MilvusServer(MilvusServerConfig())
    server.set_base_dir(data_dir)
    for key in list(server.config_keys):
        if key.endswith("_port"):  # etcd, proxy, coordinators, nodes: none may collide with anything else
            server.config.set(key, free_port())
    server.webservice_port = free_port()  # the management/metrics port: resolved from here upwards
    client, peer = f"http://127.0.0.1:{server.config.get('etcd_port')}", f"http://127.0.0.1:{free_port()}"
    etcd_config = os.path.join(data_dir, "embed-etcd.yaml")
    os.makedirs(data_dir, exist_ok=True)
    with open(etcd_config, "w", encoding="utf-8") as out:
        out.write(f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
                  f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
                  f"initial-cluster: default={peer}\n")
    os.environ["ETCD_CONFIG_PATH"] = etcd_config  # the server inherits the environment

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()  # waits for /healthz
    print(json.dumps({"proxy_port": server.listen_port, "management_port": server.webservice_port,
                      "pid": server.server_proc.pid}), flush=True)
    server.wait()


if __name__ == "__main__":
    main(sys.argv[1])
