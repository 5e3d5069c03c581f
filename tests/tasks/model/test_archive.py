"""A model archive is untrusted input: a pickled payload, a zip bomb, malformed manifests
and plans that name other callables are each refused with one line, and nothing in them
runs. Archives are built here member by member, with manifests recomputed as an
attacker would."""

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hybridlabel.cli.main import app
from hybridlabel.models.archive_manifest import ARCHIVE_FORMAT
from hybridlabel.tasks.model.archive import ArchiveError, read_archive

runner = CliRunner()
REPO = Path(__file__).resolve().parents[3]
CT = str(REPO / "tests" / "data" / "real-ct" / "ct_abdomen_3mm.nii.gz")
# a genuine (tiny) PlainConvUNet: 2 stages of 4 and 8 features
PLANS = {
    "configurations": {
        "3d_fullres": {
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": 2,
                    "features_per_stage": [4, 8],
                    "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
                    "strides": [[1, 1, 1], [2, 2, 2]],
                    "n_conv_per_stage": [1, 1],
                    "n_conv_per_stage_decoder": [1],
                    "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-5, "affine": True},
                    "dropout_op": None,
                    "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU",
                    "nonlin_kwargs": {"inplace": True},
                },
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            }
        }
    }
}
DATASET = {"labels": {"background": 0, "liver": 1}, "channel_names": {"0": "CT"}}


def _state() -> dict:
    from hybridlabel.models.nnunet.network import build_network

    torch.manual_seed(0)
    return build_network(PLANS, DATASET, "3d_fullres").state_dict()


def _weights(extra=None) -> bytes:
    buf = io.BytesIO()
    ckpt = {
        "network_weights": _state(),
        "init_args": {"configuration": "3d_fullres"},
        "inference_allowed_mirroring_axes": [0, 1, 2],
    }
    torch.save({**ckpt, **(extra or {})}, buf)
    return buf.getvalue()


def build(path: Path, weights: bytes | None = None, plans=PLANS, manifest=None, sha=None, dataset=DATASET) -> Path:
    """An archive whose manifest hashes match its members (what anyone can recompute)."""
    members = {
        "weights.pth": weights if weights is not None else _weights(),
        "plans.json": json.dumps(plans).encode(),
        "dataset.json": json.dumps(dataset).encode(),
        "config.json": b"{}",
    }
    info = (
        manifest
        if manifest is not None
        else {
            "format": ARCHIVE_FORMAT,
            "labels": DATASET["labels"],
            "fast": True,
            "sha256": sha if sha is not None else {n: hashlib.sha256(d).hexdigest() for n, d in members.items()},
        }
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hybridlabel.json", json.dumps(info))
        for name, data in members.items():
            zf.writestr(name, data)
    return path


class Payload:
    """Unpickling this would write the marker file: the attack from the issue."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_genuine_shape_is_read(tmp_path):
    bundle, info = read_archive(build(tmp_path / "ok.hlmodel.zip"))
    assert bundle.configuration == "3d_fullres" and bundle.mirror_axes == (0, 1, 2)
    state = _state()
    assert all(torch.equal(bundle.weights[k], state[k]) for k in state) and info["labels"] == DATASET["labels"]


def test_a_pickled_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = build(tmp_path / "evil.hlmodel.zip", _weights({"extra": Payload(marker)}))
    with pytest.raises(ArchiveError, match=r"holds objects other than weights \(exec\) and was refused"):
        read_archive(evil)
    result = runner.invoke(app, ["predict", str(evil), CT, str(tmp_path / "o.nii.gz")])
    assert not marker.exists()
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize(
    "kind, message",
    [
        ("sha_list", "manifest field sha256"),
        ("manifest_list", "manifest is a JSON list"),
        ("sha_not_hex", "not a 64-digit hex digest"),
        ("plans_list", "plans.json is not nnU-Net plans"),
        ("plans_class", "only dynamic_network_architectures classes are loaded"),
        ("plans_import", "only torch.nn layer classes are loaded"),
        ("no_weights", "not an nnU-Net checkpoint"),
        ("garbage_weights", "not a readable PyTorch checkpoint"),
        ("qc_zero_volume", "manifest field label_qc.1"),
        ("orientation_word", "manifest field orientation"),
        ("tumor_bar", "manifest field tumor_filter.min_peak"),
        ("mirror_text", r"mirroring axes \['x'\] are not distinct axes 0-2"),
        ("mirror_seven", r"mirroring axes \[0, 7\] are not distinct axes 0-2"),
        ("label_text", "label 'liver' is 'one', not a class id 0-255"),
    ],
)
def test_malformed_archives_get_one_line(tmp_path, kind, message):
    path = tmp_path / f"{kind}.hlmodel.zip"
    if kind == "sha_list":
        build(path, manifest={"format": ARCHIVE_FORMAT, "labels": {}, "sha256": ["x"]})
    elif kind == "manifest_list":
        build(path, manifest=[1, 2])
    elif kind == "sha_not_hex":
        build(path, sha={n: "x" for n in ("weights.pth", "plans.json", "dataset.json", "config.json")})
    elif kind == "plans_list":
        build(path, plans=[])
    elif kind == "plans_class":
        build(
            path,
            plans={
                "configurations": {
                    "3d_fullres": {
                        "architecture": {
                            **PLANS["configurations"]["3d_fullres"]["architecture"],
                            "network_class_name": "os.system",
                        }
                    }
                }
            },
        )
    elif kind == "plans_import":
        arch = json.loads(json.dumps(PLANS["configurations"]["3d_fullres"]["architecture"]))
        arch["arch_kwargs"]["nonlin"] = "subprocess.Popen"
        build(path, plans={"configurations": {"3d_fullres": {"architecture": arch}}})
    elif kind in (
        "qc_zero_volume",
        "orientation_word",
        "tumor_bar",
    ):  # a zero volume would divide by zero in predict's check
        members = {
            "weights.pth": _weights(),
            "plans.json": json.dumps(PLANS).encode(),
            "dataset.json": json.dumps(DATASET).encode(),
            "config.json": b"{}",
        }
        build(
            path,
            manifest={
                "format": ARCHIVE_FORMAT,
                "labels": DATASET["labels"],
                "fast": True,
                "sha256": {n: hashlib.sha256(d).hexdigest() for n, d in members.items()},
                **(
                    {"label_qc": {"1": {"volume_ml": [0, 0], "max_components": 1, "cases": 1}}}
                    if kind == "qc_zero_volume"
                    else {"tumor_filter": {"tumor_id": 14, "min_peak": 9}}
                    if kind == "tumor_bar"
                    else {"orientation": "upright"}
                ),
            },
        )
    elif kind in ("mirror_text", "mirror_seven"):
        build(path, _weights({"inference_allowed_mirroring_axes": ["x"] if kind == "mirror_text" else [0, 7]}))
    elif kind == "label_text":
        build(path, dataset={**DATASET, "labels": {"background": 0, "liver": "one"}})
    elif kind == "no_weights":
        buf = io.BytesIO()
        torch.save({"something": torch.ones(1)}, buf)
        build(path, buf.getvalue())
    else:
        build(path, b"not a checkpoint at all")
    with pytest.raises(ArchiveError, match=message):
        read_archive(path)
    result = runner.invoke(app, ["predict", str(path), CT, str(tmp_path / "o.nii.gz")])
    assert result.exit_code == 2 and message.split()[0] in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_checkpoints_with_numpy_values_load_on_many_threads_at_once(tmp_path):
    """nnU-Net's checkpoints carry numpy scalars and arrays (its training log); Prefect
    loads them from several task threads at once (a per-thread allow list lost that race)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from hybridlabel.tasks.model.archive import load_weights

    path = tmp_path / "ckpt.pth"
    torch.save(
        {
            "network_weights": {"w": torch.ones(2)},
            "_best_ema": np.float64(0.5),
            "logging": {"dice": [np.float32(0.1), np.array([0.2, 0.3])], "epoch": np.int64(3)},
        },
        path,
    )
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: load_weights(path, "test"), range(32)))
    assert all(ck["_best_ema"] == 0.5 and ck["logging"]["epoch"] == 3 for ck in loaded)


def _patch_member_header(path: Path, member: str, offset: int, value: bytes) -> None:
    """Overwrite bytes of a member's local and central headers (as a hand-edited zip would)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for signature, name_at in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            if data[at + name_at : at + name_at + len(name)] == name:
                local_offset = offset if signature == b"PK\x03\x04" else offset + 2  # central has 2 more bytes first
                data[at + local_offset : at + local_offset + len(value)] = value
            start = at + 4
    path.write_bytes(bytes(data))


def test_lying_or_exotic_zip_headers_get_one_line(tmp_path):
    """A member whose header understates its size (a bomb that hides) stops at the
    declared size and fails its CRC; an unknown compression method is not inflated."""
    liar = build(tmp_path / "liar.hlmodel.zip")
    declared = (100).to_bytes(4, "little")  # weights.pth claims 100 bytes uncompressed
    _patch_member_header(liar, "weights.pth", 22, declared)
    with pytest.raises(ArchiveError, match=r"not a readable model archive \(BadZipFile\)"):
        read_archive(liar)
    exotic = build(tmp_path / "exotic.hlmodel.zip")
    _patch_member_header(exotic, "plans.json", 8, (99).to_bytes(2, "little"))  # method 99 (AES)
    with pytest.raises(ArchiveError, match=r"not a readable model archive \(NotImplementedError\)"):
        read_archive(exotic)


def test_an_expected_digest_is_checked(tmp_path):
    path = build(tmp_path / "ok.hlmodel.zip")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    read_archive(path, expect_sha256=digest.upper())
    with pytest.raises(ArchiveError, match="not the 00+ you expected"):
        read_archive(path, expect_sha256="0" * 64)


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    """weights.pth inflating to 1.5 GiB from a ~1.5 MB archive (its sha256 in the manifest,
    as an attacker would write it): refused from the zip directory's declared size, in a
    CLI process whose peak memory stays under 1 GB."""
    bomb, digest, block = tmp_path / "bomb.hlmodel.zip", hashlib.sha256(), bytes(64 << 20)
    for _ in range(24):
        digest.update(block)
    small = {
        "plans.json": json.dumps(PLANS).encode(),
        "dataset.json": json.dumps(DATASET).encode(),
        "config.json": b"{}",
    }
    sha = {"weights.pth": digest.hexdigest(), **{n: hashlib.sha256(d).hexdigest() for n, d in small.items()}}
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("hybridlabel.json", json.dumps({"format": ARCHIVE_FORMAT, "labels": {}, "sha256": sha}))
        with zf.open("weights.pth", "w", force_zip64=True) as fh:
            for _ in range(24):
                fh.write(block)
        for name, data in small.items():
            zf.writestr(name, data)
    assert bomb.stat().st_size < 4 << 20
    # peak memory of this process image: VmHWM (ru_maxrss would report a forked parent's peak)
    script = (
        "import re, sys\nfrom hybridlabel.cli.main import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "    print('peak', hwm, 'code', e.code, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "predict", str(bomb), CT, str(tmp_path / "o.nii.gz")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert "weights.pth declares 1,536 MiB uncompressed, over the 1,024 MiB limit" in lines[0], proc.stderr
    peak_kb, code = int(lines[-1].split()[1]), lines[-1].split()[-1]
    assert len(lines) == 2 and code == "2" and peak_kb < 1_000_000, lines


def _arch_variant(network_class=None, **kwargs) -> dict:
    arch = json.loads(json.dumps(PLANS["configurations"]["3d_fullres"]["architecture"]))
    if network_class:
        arch["network_class_name"] = network_class
    arch["arch_kwargs"].update(kwargs)
    return {"configurations": {"3d_fullres": {"architecture": arch}}}


def _predict_one_line(tmp_path, archive: Path) -> str:
    result = runner.invoke(app, ["predict", str(archive), CT, str(tmp_path / "o.nii.gz")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "o.nii.gz").exists()
    return result.output


def test_plans_that_reach_torch_hub_through_an_import_run_no_code(tmp_path):
    """The probe's archive: a name inside dynamic_network_architectures that pydoc.locate
    follows through `unet`'s `import torch` to torch.hub.load, with arguments that make it
    import a local hubconf.py. Hash-consistent, so only the class check stands in its way."""
    hub, marker = tmp_path / "hub", tmp_path / "pwned"
    hub.mkdir()
    (hub / "hubconf.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef net(**kw):\n    return None\n")
    plans = _arch_variant("dynamic_network_architectures.architectures.unet.torch.hub.load")
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"] = {
        "repo_or_dir": str(hub),
        "model": "net",
        "source": "local",
        "trust_repo": True,
    }
    plans["configurations"]["3d_fullres"]["architecture"]["_kw_requires_import"] = []
    archive = build(tmp_path / "hub.hlmodel.zip", plans=plans)
    with pytest.raises(ArchiveError, match=r"leaves dynamic_network_architectures.architectures at .*unet\.torch"):
        read_archive(archive)
    assert "network class refused" in _predict_one_line(tmp_path, archive)
    assert not marker.exists()


@pytest.mark.parametrize(
    "layer, why",
    [
        ("torch.nn.modules.conv.F", "is a module, not a torch.nn.Module class"),
        ("torch.nn.modules.conv.Parameter", "is a class, not a torch.nn.Module class"),
        ("torch.nn.DataParallel", "defined in torch.nn.parallel.data_parallel, not inside torch.nn.modules"),
        ("torch.nn.modules.conv.Conv9d", "does not exist"),
    ],
)
def test_layer_names_are_resolved_not_pattern_matched(tmp_path, layer, why):
    archive = build(tmp_path / "layer.hlmodel.zip", plans=_arch_variant(nonlin=layer))
    with pytest.raises(ArchiveError, match=why):
        read_archive(archive)
    assert "argument 'nonlin' refused" in _predict_one_line(tmp_path, archive)


def test_plans_asking_for_a_huge_network_allocate_nothing(tmp_path):
    """2,500 features per stage: the network is built on the meta device and its shapes
    compared with the checkpoint's, so the refusal comes before any memory is taken
    (a real build would allocate ~3.8 GB of parameters)."""
    archive = build(tmp_path / "huge.hlmodel.zip", plans=_arch_variant(features_per_stage=[2500, 2500]))
    script = (
        "import re, sys\nfrom hybridlabel.tasks.model.archive import ArchiveError, read_archive\n"
        "try:\n    read_archive(sys.argv[1])\nexcept ArchiveError as e:\n    print(e)\n"
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(archive)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    message, peak_kb = proc.stdout.strip().splitlines()
    assert "the weights do not fit the network the plans describe" in message and "(2500, 1, 3, 3, 3)" in message
    assert int(peak_kb) < 1_500_000, peak_kb


@pytest.mark.parametrize(
    "change, why",
    [
        ({"n_stages": 3}, "describes no network nnU-Net can build"),
        ({"input_channels": 7}, "input_channels are not parameters of PlainConvUNet"),
        ({"repo_or_dir": "/tmp"}, "repo_or_dir are not parameters of PlainConvUNet"),
        ({"strides": [[1, 1, 1]] * 1000}, "lists 1000 entries"),
    ],
)
def test_architecture_arguments_are_checked_against_the_constructor(tmp_path, change, why):
    archive = build(tmp_path / "args.hlmodel.zip", plans=_arch_variant(**change))
    with pytest.raises(ArchiveError, match=why):
        read_archive(archive)
    _predict_one_line(tmp_path, archive)
