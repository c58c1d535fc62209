"""deploy/ against the Kubernetes API schemas.

- Every document of deploy/kubernetes/*.yaml is validated (strict: unknown fields are
  errors) with kubernetes-validate, which bundles the API's JSON schemas, for the oldest
  Kubernetes the docs name (1.29) and the newest the package knows.
- The Helm chart is linted and rendered by Helm's own engine (helm-python-sdk binds the
  Helm v4 Go SDK as a shared library: the same rendering as `helm template`), with its
  default values and with the overrides docs/kubernetes.md shows, and every rendered
  manifest is validated the same way.

No cluster is contacted; what a cluster adds (admission webhooks, quotas) is not checked.
"""

import pathlib

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
CHART = ROOT / "deploy" / "helm" / "maitred"
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]

# The `helm install` example of docs/kubernetes.md.
DOC_OVERRIDES = {
    "image": {"repository": "registry.example.com/maitred", "tag": "0.1.0"},
    "passwordSecret": {"name": "app-db"},
}


def documents(text: str, origin: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs, f"{origin}: no Kubernetes object"
    for d in docs:
        assert isinstance(d, dict) and d.get("kind"), f"{origin}: not an object: {d!r}"
    return docs


def validate_all(docs: list[dict], origin: str) -> None:
    for version in VERSIONS:
        for d in docs:
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                name = d.get("metadata", {}).get("name")
                pytest.fail(f"{origin}: {d['kind']}/{name} invalid for {version}: {e.message}")


def test_there_are_manifests_to_check() -> None:
    assert MANIFESTS, "deploy/kubernetes has no manifest"
    assert (CHART / "Chart.yaml").is_file()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_plain_manifests_match_the_kubernetes_schema(path: pathlib.Path) -> None:
    validate_all(documents(path.read_text(), path.name), path.name)


def test_helm_chart_lints_without_errors() -> None:
    report = helm.lint(str(CHART))
    assert report["errors"] == [], report
    # Severity 1 is INFO (e.g. "icon is recommended"); WARNING (2) and up are not allowed.
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], report


@pytest.mark.parametrize(
    "values", [{}, DOC_OVERRIDES], ids=["default values", "docs example"]
)
def test_helm_chart_renders_valid_manifests(values: dict) -> None:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name="t", namespace="default")
    kinds = set()
    for path, text in rendered.items():
        if not path.endswith(".yaml") or not text.strip():
            continue
        docs = documents(text, path)
        validate_all(docs, path)
        kinds.update(d["kind"] for d in docs)
    assert {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} <= kinds, kinds
    if values:
        deployment = next(
            d
            for p, t in rendered.items()
            if p.endswith("deployment.yaml")
            for d in yaml.safe_load_all(t)
            if d
        )
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "registry.example.com/maitred:0.1.0", image


def _rendered(values: dict) -> dict[str, list[dict]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name="t", namespace="default")
    return {
        path: [d for d in yaml.safe_load_all(text) if d]
        for path, text in rendered.items()
        if path.endswith(".yaml") and text.strip()
    }


def _one(rendered: dict[str, list[dict]], kind: str) -> dict:
    return next(d for docs in rendered.values() for d in docs if d["kind"] == kind)


def test_helm_admin_detail_surface_is_loopback_only_unless_a_token_secret_is_given() -> None:
    """The chart binds the admin endpoint on 0.0.0.0 for the probes; /pools stays on
    loopback (no detail_token) unless adminDetailToken names a Secret, whose key then
    reaches maitred as MAITRED_ADMIN_DETAIL_TOKEN."""
    import tomllib

    rendered = _rendered({})
    config = tomllib.loads(_one(rendered, "ConfigMap")["data"]["maitred.toml"])
    assert config["admin"]["listen"].startswith("0.0.0.0:"), config["admin"]
    assert "detail_token" not in config["admin"], config["admin"]
    env = _one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all(e["name"] != "MAITRED_ADMIN_DETAIL_TOKEN" for e in env), env

    values = {"adminDetailToken": {"secretName": "maitred-admin", "key": "token"}}
    rendered = _rendered(values)
    for path, docs in rendered.items():
        validate_all(docs, path)
    config = tomllib.loads(_one(rendered, "ConfigMap")["data"]["maitred.toml"])
    assert config["admin"]["detail_token"] == "${MAITRED_ADMIN_DETAIL_TOKEN}"
    env = _one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    token = next(e for e in env if e["name"] == "MAITRED_ADMIN_DETAIL_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "maitred-admin", "key": "token"}
