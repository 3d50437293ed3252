"""Build every Kubernetes overlay and check what it renders (`make lint` runs it).

For each deploy/k8s/overlays/<environment>: `kubectl kustomize` builds it (the same renderer
`kubectl apply -k` uses), kubernetes-validate checks every object against the Kubernetes schema
(--strict: unknown fields are errors), and every container of every Deployment and Job must
have CPU and memory requests and limits and an image with an explicit tag (never `latest`).
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def containers(document):
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def problems_of(documents):
    problems = []
    for document in documents:
        if document["kind"] not in WORKLOADS:
            continue
        where = f"{document['kind']}/{document['metadata']['name']}"
        for container in containers(document):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{where} container {container['name']}: no {kind}.{resource}")
            image = container.get("image", "")
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if not tag or tag == "latest":
                problems.append(f"{where} container {container['name']}: image {image!r} has no fixed tag")
    return problems


def main():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("kubectl is needed to build the overlays (kubectl kustomize): install it", file=sys.stderr)
        return 1
    validate = Path(sys.executable).parent / "kubernetes-validate"
    overlays = sorted(path for path in OVERLAYS.iterdir() if (path / "kustomization.yaml").is_file())
    if not overlays:
        print(f"no overlays in {OVERLAYS}", file=sys.stderr)
        return 1
    failed = False
    for overlay in overlays:
        name = overlay.relative_to(ROOT)
        built = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True)
        if built.returncode != 0:
            print(f"{name}: kubectl kustomize failed:\n{built.stderr}", file=sys.stderr)
            failed = True
            continue
        documents = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
        problems = problems_of(documents)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as rendered:
            rendered.write(built.stdout)
            rendered.flush()
            checked = subprocess.run(
                [str(validate), "--strict", "--quiet", rendered.name], capture_output=True, text=True
            )
        if checked.returncode != 0:
            problems.append(f"kubernetes-validate:\n{checked.stdout}{checked.stderr}")
        for problem in problems:
            print(f"{name}: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
        if not problems:
            print(
                f"{name}: {len(documents)} objects built and valid; every container has requests and limits"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
