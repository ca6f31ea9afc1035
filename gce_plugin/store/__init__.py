"""The control plane's configuration in etcd (docs/running-replicated.md).

- ``client``: an asyncio etcd v3 client (KV, Watch, Lease) over grpc.aio, moving between members.
- ``layout``: every key: Gloo's ``<prefix>/gloo.solo.io/v1/Upstream/<namespace>/<name>`` and the
  leader's own keys (leader, endpoints, statuses).
- ``codec`` / ``upstreams``: Upstream values as solo-kit writes them; list, apply (CAS), delete.
- ``watch``: revision watches that resume, re-list after compaction and never hand out a partial view.
- ``leader``: election on a lease, fenced writes, publishing only what changed.
- ``local``: real etcd members on loopback for tests and demos.
"""
