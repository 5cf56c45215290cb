"""The deployment files: compose.yaml against the Compose Specification, deploy/k8s against the Kubernetes API
schemas (both bundled in dev packages: no network), and what the stack must hold to work as the README says."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.30.0"  # the oldest minor still supported upstream when this was written


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it is in the dev extra: `make install-dev`)")
    return found


def _compose_valid(path: Path) -> subprocess.CompletedProcess[str]:
    command = [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _k8s() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[(doc["kind"], doc["metadata"]["name"] if "metadata" in doc else path.name)] = doc
    return found


def test_the_compose_file_follows_the_compose_specification(tmp_path):
    checked = _compose_valid(ROOT / "compose.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The validator does look: a misspelt key is refused.
    broken = tmp_path / "compose.yaml"
    broken.write_text((ROOT / "compose.yaml").read_text().replace("depends_on:", "depend_on:", 1))
    assert _compose_valid(broken).returncode != 0


def test_the_compose_stack_has_every_part_and_its_files():
    services = _compose()["services"]
    assert {"db", "db-replica", "pgbouncer", "redis", "api", "worker", "lb", "embeddings"} <= set(services)
    assert services["api"]["deploy"]["replicas"] == services["worker"]["deploy"]["replicas"] == 2
    assert services["embeddings"]["profiles"] == ["embeddings"]
    env = services["api"]["environment"]
    assert env["PAPERS_DB_POOLER"] == "pgbouncer"
    assert env["DATABASE_URL"].endswith("@pgbouncer:6432/papers")
    assert env["DATABASE_SESSION_URL"].endswith("@pgbouncer:6432/papers_session")
    assert "@db-replica:5432/" in env["DATABASE_REPLICA_URLS"]
    assert env["PAPERS_RATE_LIMIT_STORAGE"].startswith("redis://redis:")
    # Only the load balancer's fixed address may name a client.
    lb_address = services["lb"]["networks"]["default"]["ipv4_address"]
    assert env["PAPERS_TRUSTED_PROXIES"] == lb_address
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), source


def test_pgbouncer_pools_the_api_per_transaction_and_the_workers_per_session():
    for text in (
        (ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini").read_text(),
        _k8s()[("ConfigMap", "papers-pgbouncer")]["data"]["pgbouncer.ini"],
    ):
        ini = configparser.ConfigParser()
        ini.read_string(text)
        assert ini["pgbouncer"]["pool_mode"] == "transaction"
        assert "pool_mode=session" in ini["databases"]["papers_session"]
        assert "pool_mode" not in ini["databases"]["papers"]


def test_the_kubernetes_manifests_follow_the_api_schemas(tmp_path):
    manifests = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    command = [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES]
    checked = subprocess.run([*command, *map(str, manifests)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "api.yaml"
    broken.write_text((K8S / "api.yaml").read_text().replace("containerPort:", "containerport:", 1))
    refused = subprocess.run([*command, str(broken)], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in manifests if p.name != "secret.example.yaml")


def test_the_api_is_probed_limited_and_autoscaled():
    found = _k8s()
    [api] = found[("Deployment", "papers-api")]["spec"]["template"]["spec"]["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(api["resources"]) == {"requests", "limits"}
    refs = {next(iter(ref.values()))["name"] for ref in api["envFrom"]}
    assert refs == {"papers-config", "papers-db"}
    assert found[("Secret", "papers-db")]["stringData"].keys() >= {"DATABASE_URL", "DATABASE_SESSION_URL"}
    hpa = found[("HorizontalPodAutoscaler", "papers-api")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "papers-api"}
    assert hpa["minReplicas"] >= 2
    [worker] = found[("Deployment", "papers-worker")]["spec"]["template"]["spec"]["containers"]
    assert worker["args"] == ["papers", "worker"]
    assert "resources" in worker
    assert found[("ConfigMap", "papers-config")]["data"]["PAPERS_DB_POOLER"] == "pgbouncer"


@pytest.mark.parametrize("script", sorted((ROOT / "deploy").rglob("*.sh")), ids=lambda p: p.name)
def test_the_container_scripts_parse_as_posix_shell(script):
    # The images run them with /bin/sh; `sh -n` reads the whole script without running it.
    checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
