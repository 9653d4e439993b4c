"""Which Milvus versions the operator can work with, from the version string Milvus reports.

Milvus reports versions as `v2.5.4`, `2.4.10`, `v2.3.5-lite` (the PyPI build), `v2.4.23-gpu`,
`v2.6.0-rc1`, sometimes with build metadata after `+`. Thresholds, read in milvus-io/milvus:

- 2.4.1: the declarative resource-group API (`UpdateResourceGroups`, requests/limits, transfer_from/to,
  node filters; PR #31930, cherry-picked to 2.4 after 2.4.0: "Declarative Resource Group API should not
  release in 2.4.0", milvus-sdk-java #859/#879, pymilvus #2054, April 2024). Older servers answer
  `UpdateResourceGroups` with gRPC UNIMPLEMENTED and silently drop a config given to
  `CreateResourceGroup` (measured on a real 2.3.5).
- 2.4.10: `node/suspend` removes the node from its resource group (`ResourceManager.HandleNodeDown`),
  so Milvus assigns a replacement and moves its data away (PR #35492 on master, #35586 on the 2.4
  branch, merged 2024-08-20; first release 2.4.10 inferred from the merge date). Before, a suspended
  node stays in its group: a drain never starts.
- `distribution/get` writes segment ids as strings from PR #39927 (2.4.23) / #39926 (2.5 branch,
  2.5.5 inferred from its merge date) and in 2.6; older servers write integers and leave out empty
  keys. The adapter reads both shapes whatever the version: no gate.
- 2.4.17: resource-group node filters (`node_filter.node_labels`, nodes labelled by `MILVUS_SERVER_LABEL_<KEY>`;
  the 2.4.17 release notes): what a group with its own workload needs to take only that workload's nodes.
- 2.6.0: streaming nodes serve the channels (`internal/streamingnode`; one MixCoord runs the coordinators).
  A query node holds sealed segments only, so its drain is over once they are gone (`distribution/get`
  shows it no channel); the query node embedded in each streaming node is listed by `node/list` but is
  never placed in a group (querycoord `handleNodeUp`) and `node/resume` refuses it with 1100
  (`ops_services.go` `ResumeNode`). The operator never resumes or counts a node that has no pod of the pool.
- 2.6.8: a query node started with `MILVUS_SERVER_LABEL_RESOURCE_GROUP=<rg>` (or the role-specific
  `MILVUS_SERVER_LABEL_QUERYNODE_RESOURCE_GROUP`) joins that group, creating it with requests 0 and limits
  1,000,000 (`sessionutil/labels.go`, PR #46402; `mustSelectAssignIncomingNodeTargetRG`), and Milvus refuses
  to drop a group a node with a session is labelled with (`validateResourceGroupIsDeletable`).

And on every version with `HandleNodeDown` (2.4.10+): suspending a node that is in no group does nothing
(milvus#53176, open; seen on 2.6.22, 2.6.23 and master), so the operator suspends only a node it sees in a
group other than the pending one, and waits for the data of any other node to move away by itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DECLARATIVE_API = (2, 4, 1)
SUSPEND_LEAVES_GROUP = (2, 4, 10)
NODE_FILTERS = (2, 4, 17)  # node_filter.node_labels, from MILVUS_SERVER_LABEL_<KEY>: a group's own workload
STREAMING = (2, 6, 0)
GROUPS_FROM_LABELS = (2, 6, 8)

_VERSION = re.compile(r"^\s*[vV]?(\d+)\.(\d+)(?:\.(\d+))?(?P<suffix>[-+._][0-9A-Za-z.+_-]*)?\s*$")
# A pre-release of X may lack what X has: it sorts before X. Build flavours (-lite, -gpu, -hotfix)
# and build metadata (+...) do not.
_PRE_RELEASE = re.compile(r"(?:^|[-._])(rc|alpha|beta|pre|dev|snapshot)\d*(?:$|[-._+])", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class MilvusVersion:
    major: int
    minor: int
    patch: int
    release: bool = True  # False for a pre-release (rc, alpha, beta, dev, ...)

    def at_least(self, number: tuple[int, int, int]) -> bool:
        return (self.major, self.minor, self.patch, self.release) >= (*number, True)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + ("" if self.release else " (pre-release)")


def parse_milvus_version(text: str) -> MilvusVersion | None:
    """The version in `text`, or None when it is not a Milvus version string."""
    match = _VERSION.match(text)
    if match is None:
        return None
    suffix = (match.group("suffix") or "").split("+", 1)[0]
    return MilvusVersion(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0),
                         release=_PRE_RELEASE.search(suffix) is None)


@dataclass(frozen=True)
class MilvusSupport:
    """What the operator may do with a Milvus of this version; `message` says why not, naming it."""

    reported: str  # the version string as Milvus reported it
    version: MilvusVersion | None
    supported: bool  # the declarative resource-group API is there: configs may be written
    suspend_leaves_group: bool  # a suspended node leaves its group: drains (scale-in) can start
    message: str  # empty when everything is supported
    streaming: bool = False  # streaming nodes hold the channels; embedded query nodes are listed in no group
    groups_from_labels: bool = False  # a node labelled MILVUS_SERVER_LABEL_RESOURCE_GROUP joins (creates) it
    node_filters: bool = False  # groups take only nodes with their labels: groups may have their own workloads

    @property
    def drains_possible(self) -> bool:
        return self.supported and self.suspend_leaves_group

    def data_held(self, segments: int, channels: int) -> str:
        """What a query node's `distribution/get` showed, in words: from 2.6 its channels are on streaming nodes."""
        if self.streaming and not channels:
            return f"{segments} sealed segments; its channels are on streaming nodes"
        return f"{segments} segments, {channels} channels"


def _dotted(number: tuple[int, int, int]) -> str:
    return ".".join(map(str, number))


def milvus_support(reported: str) -> MilvusSupport:
    version = parse_milvus_version(reported)
    shown = reported.strip() or "(empty)"
    if version is None:
        return MilvusSupport(reported, None, supported=False, suspend_leaves_group=False,
                             message=f"Milvus reported version {shown!r}, which is not a version number: "
                                     f"cannot tell whether resource group configs (UpdateResourceGroups, "
                                     f"Milvus >= {_dotted(DECLARATIVE_API)}) are supported")
    supported = version.at_least(DECLARATIVE_API)
    leaves = version.at_least(SUSPEND_LEAVES_GROUP)
    if not supported:
        message = (f"Milvus {shown} is older than {_dotted(DECLARATIVE_API)}: resource group configs "
                   f"(UpdateResourceGroups) are not supported")
    elif not leaves:
        message = (f"Milvus {shown}: node/suspend keeps the node in its group before "
                   f"{_dotted(SUSPEND_LEAVES_GROUP)}, so no drain can start")
    else:
        message = ""
    return MilvusSupport(reported, version, supported=supported, suspend_leaves_group=leaves, message=message,
                         streaming=version.at_least(STREAMING), groups_from_labels=version.at_least(GROUPS_FROM_LABELS),
                         node_filters=version.at_least(NODE_FILTERS))
