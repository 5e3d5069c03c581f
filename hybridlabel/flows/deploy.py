"""Register the deployments of deploy/prefect.yaml with the Prefect server in PREFECT_API_URL."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PREFECT_FILE = REPO / "deploy" / "prefect.yaml"


def deployment_specs(prefect_file: Path = PREFECT_FILE) -> list[dict]:
    spec = yaml.safe_load(Path(prefect_file).read_text())
    return spec["deployments"]


def register_deployments(
    config_path: Path | None, workdir: Path | None, prefect_file: Path = PREFECT_FILE
) -> list[str]:
    """Create the work pool if needed and register every deployment; returns their names."""
    from prefect import flow as prefect_flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    names = []
    for spec in deployment_specs(prefect_file):
        pool = spec["work_pool"]["name"]
        with get_client(sync_client=True) as client:
            try:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            except ObjectAlreadyExists:
                pass  # the pool was created before (by hand, or by an earlier deploy): use it
        params = dict(spec.get("parameters") or {})
        if config_path is not None:
            params["config_path"] = str(Path(config_path).resolve())
        if workdir is not None:
            params["workdir"] = str(Path(workdir).resolve())
        source = prefect_flow.from_source(source=str(REPO), entrypoint=spec["entrypoint"])
        deployment_id = source.deploy(
            name=spec["name"],
            work_pool_name=pool,
            parameters=params,
            description=spec.get("description"),
            print_next_steps=False,
        )
        names.append(f"{source.name}/{spec['name']} ({deployment_id})")
    return names
