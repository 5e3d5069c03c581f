"""A full disk is named, with the path and the space, whoever wrote: torch's zip writer
(`unexpected pos`) or a plain write (errno 28). /dev/full fails every write as a full disk."""

import pytest
import torch

from hybridlabel.tasks.files.disk import DiskFullError, named_disk_full


def test_torch_save_on_a_full_disk_is_named(tmp_path):
    with pytest.raises(DiskFullError) as info:
        with named_disk_full(tmp_path / "model.pth", 4_000_000):
            torch.save({"w": torch.zeros(1_000_000)}, "/dev/full")
    message = str(info.value)
    assert message.startswith(f"no space left on the device writing {tmp_path / 'model.pth'} (")
    assert "MB free there, about 4 MB needed" in message and "\n" not in message and "inline_container" not in message


def test_a_plain_write_on_a_full_disk_is_named_and_other_errors_pass(tmp_path):
    with pytest.raises(DiskFullError, match="no space left on the device writing /dev/full"):
        with named_disk_full("/dev/full"), open("/dev/full", "wb") as fh:
            fh.write(b"x" * 100_000)
    with pytest.raises(RuntimeError, match="something else"):
        with named_disk_full(tmp_path):
            raise RuntimeError("something else")
