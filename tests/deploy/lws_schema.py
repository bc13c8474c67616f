"""The LeaderWorkerSet fields (leaderworkerset.x-k8s.io/v1, the LWS project's API reference:
LeaderWorkerSetSpec, LeaderWorkerTemplate, RolloutStrategy, RollingUpdateConfiguration,
SubGroupPolicy, NetworkConfig), which kubernetes-validate does not know. Unknown fields, wrong
types and values outside the enums are reported; the pod templates are core PodTemplateSpecs and
are checked as Pods by the schema test."""

INT = "int"
STR = "str"
INT_OR_STR = "int-or-string"
TEMPLATE = "PodTemplateSpec"

ROLLING = {"partition": INT, "maxUnavailable": INT_OR_STR, "maxSurge": INT_OR_STR}
SPEC = {
    "replicas": INT,
    "leaderWorkerTemplate": {
        "leaderTemplate": TEMPLATE,
        "workerTemplate": TEMPLATE,
        "size": INT,
        "restartPolicy": ("Default", "RecreateGroupOnPodRestart", "RecreateGroupAfterStart", "None"),
        "subGroupPolicy": {"subGroupPolicyType": ("LeaderWorker", "LeaderExcluded"),
                           "subGroupSize": INT},
        "volumeClaimTemplates": list,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": ("Retain", "Delete"),
                                                 "whenScaled": ("Retain", "Delete")},
    },
    "rolloutStrategy": {"type": ("RollingUpdate",), "rollingUpdateConfiguration": ROLLING},
    "startupPolicy": ("LeaderCreated", "LeaderReady"),
    "networkConfig": {"subdomainPolicy": ("Shared", "UniquePerReplica")},
}
REQUIRED = {"spec": ["leaderWorkerTemplate"], "spec.leaderWorkerTemplate": ["workerTemplate"],
            "spec.rolloutStrategy": ["type"]}


def _check(value, schema, path, problems):
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for key in REQUIRED.get(path, []):
            if key not in value:
                problems.append(f"{path}.{key}: required")
        for key, v in value.items():
            if key not in schema:
                problems.append(f"{path}.{key}: unknown field")
            else:
                _check(v, schema[key], f"{path}.{key}", problems)
    elif isinstance(schema, tuple):
        if value not in schema:
            problems.append(f"{path}: {value!r} is not one of {', '.join(schema)}")
    elif schema == INT:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{path}: {value!r} is not a non-negative integer")
    elif schema == INT_OR_STR:
        if not (isinstance(value, int) or (isinstance(value, str) and value.endswith("%"))):
            problems.append(f"{path}: {value!r} is not an integer or a percentage")
    elif schema == TEMPLATE:
        if not isinstance(value, dict) or set(value) - {"metadata", "spec"} or "spec" not in value:
            problems.append(f"{path}: not a pod template (metadata, spec)")
    elif schema is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")


def check_leader_worker_set(obj):
    """The problems found in one LeaderWorkerSet object (an empty list when none)."""
    problems = []
    if obj.get("apiVersion") != "leaderworkerset.x-k8s.io/v1":
        problems.append(f"apiVersion {obj.get('apiVersion')!r} is not leaderworkerset.x-k8s.io/v1")
    for key in obj:
        if key not in ("apiVersion", "kind", "metadata", "spec"):
            problems.append(f"{key}: unknown top-level field")
    if not obj.get("metadata", {}).get("name"):
        problems.append("metadata.name: required")
    _check(obj.get("spec"), SPEC, "spec", problems)
    t = obj.get("spec", {}).get("leaderWorkerTemplate", {})
    if isinstance(t.get("size"), int) and t["size"] < 1:
        problems.append("spec.leaderWorkerTemplate.size: at least 1 (the leader)")
    return problems
