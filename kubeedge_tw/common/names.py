"""Every name that crosses a module boundary or the wire, spelled exactly as KubeEdge does.

Peers switch on these strings (reference 1.1, 2.8), so they are never to be "fixed": the
edge hub's module name really is ``websocket`` and device twin's is ``twin``.
Source of truth: KubeEdge ``edge/pkg/common/modules/names.go`` and
``cloud/pkg/common/modules/names.go``.
"""

# -- edge modules (name) ------------------------------------------------------------------
EDGEHUB = "websocket"
METAMANAGER = "metaManager"
EDGED = "edged"
DEVICETWIN = "twin"
EVENTBUS = "eventbus"
SERVICEBUS = "servicebus"
DBTEST = "dbTest"

# -- edge groups --------------------------------------------------------------------------
HUB_GROUP = "hub"
META_GROUP = "meta"
EDGED_GROUP = "edged"
TWIN_GROUP = "twin"
BUS_GROUP = "bus"
USER_GROUP = "user"

#: Every edge module with its group, in KubeEdge's start order.
EDGE_MODULES = (
    (EDGEHUB, HUB_GROUP),
    (METAMANAGER, META_GROUP),
    (EDGED, EDGED_GROUP),
    (DEVICETWIN, TWIN_GROUP),
    (EVENTBUS, BUS_GROUP),
    (SERVICEBUS, USER_GROUP),
)

# -- cloud modules (name == group in KubeEdge's cloud) --------------------------------------
CLOUDHUB = "cloudhub"
EDGECONTROLLER = "edgecontroller"
DEVICECONTROLLER = "devicecontroller"
SYNCCONTROLLER = "synccontroller"
CLOUDSTREAM = "cloudstream"
ROUTER = "router"
DYNAMICCONTROLLER = "dynamiccontroller"

CLOUDHUB_GROUP = "cloudhub"
EDGECONTROLLER_GROUP = "edgecontroller"
DEVICECONTROLLER_GROUP = "devicecontroller"
SYNCCONTROLLER_GROUP = "synccontroller"

CLOUD_MODULES = (
    (CLOUDHUB, CLOUDHUB_GROUP),
    (EDGECONTROLLER, EDGECONTROLLER_GROUP),
    (DEVICECONTROLLER, DEVICECONTROLLER_GROUP),
    (SYNCCONTROLLER, SYNCCONTROLLER_GROUP),
)

# -- groups as they appear in route.group on the wire (reference 2.8) ------------------------
WIRE_GROUP_RESOURCE = "resource"
WIRE_GROUP_TWIN = "twin"
WIRE_GROUP_USER = "user"
WIRE_GROUP_FUNC = "func"
WIRE_GROUP_META = "meta"

# -- operations (reference 2.8) -------------------------------------------------------------
OP_INSERT = "insert"
OP_UPDATE = "update"
OP_DELETE = "delete"
OP_QUERY = "query"
OP_RESPONSE = "response"
OP_ERROR = "error"
OP_KEEPALIVE = "keepalive"
OP_PUBLISH = "publish"
OP_SUBSCRIBE = "subscribe"
OP_MESSAGE = "message"
OP_GET = "get"
OP_GET_RESULT = "get_result"
OP_LIST = "list"
OP_DETAIL = "detail"
OP_DELTA = "delta"
OP_DOCUMENT = "document"
OP_UPDATED = "updated"
OP_DELETED = "deleted"
OP_CONNECTED = "connected"
OP_DISCONNECTED = "disconnected"
OP_META_INTERNAL_SYNC = "meta-internal-sync"
OP_ACTION = "action"
OP_ACTION_RESULT = "action_result"
OP_PATCH = "patch"
OP_UPLOAD = "upload"
OP_WATCH = "watch"

#: Operations a peer may legitimately send; anything else is refused at the hub.
KNOWN_OPERATIONS = frozenset({
    OP_INSERT, OP_UPDATE, OP_DELETE, OP_QUERY, OP_RESPONSE, OP_ERROR, OP_KEEPALIVE,
    OP_PUBLISH, OP_SUBSCRIBE, OP_MESSAGE, OP_GET, OP_GET_RESULT, OP_LIST, OP_DETAIL,
    OP_DELTA, OP_DOCUMENT, OP_UPDATED, OP_DELETED, OP_CONNECTED, OP_DISCONNECTED,
    OP_META_INTERNAL_SYNC, OP_ACTION, OP_ACTION_RESULT, OP_PATCH, OP_UPLOAD, OP_WATCH,
    "request_exist", "response_exist", "unhold-upgrade",
})

# -- resource types (reference 2.8) ---------------------------------------------------------
RES_POD = "pod"
RES_PODLIST = "podlist"
RES_PODSTATUS = "podstatus"
RES_PODPATCH = "podpatch"
RES_NODE = "node"
RES_NODESTATUS = "nodestatus"
RES_NODEPATCH = "nodepatch"
RES_CONFIGMAP = "configmap"
RES_SECRET = "secret"
RES_SERVICE = "service"
RES_ENDPOINTS = "endpoints"
RES_LEASE = "lease"
RES_MEMBERSHIP = "membership"
RES_TWIN = "twin"
RES_DEVICE = "device"

# -- fixed values ---------------------------------------------------------------------------
#: KubeEdge's leftover default project id, sent in the URL path and the project_id header.
DEFAULT_PROJECT_ID = "e632aba927ea4ac2b575ec1603d56f10"
#: Resource of the edge hub's local connection broadcast (reference 2.8).
RES_NODE_CONNECTION = "node/connection"
CLOUD_CONNECTED = "cloud_connected"
CLOUD_DISCONNECTED = "cloud_disconnected"
