"""transcribe's archive checks and input errors (the decoding itself: test_recipe.py)."""

import io
import tarfile
import zipfile

import pytest

from espnet2_smile.bin.transcribe import archive_members, main, unpack_model
from test_bad_media import make_clip


def test_member_outside_the_archive_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("meta.yaml", "files: {}\nyaml_files: {}\n")
        z.writestr("../../evil.txt", "x")
    with pytest.raises(ValueError, match="points outside the archive"):
        unpack_model(bad, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_link_in_a_tar_archive_is_refused(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as t:
        info = tarfile.TarInfo("meta.yaml")
        data = b"files: {}\nyaml_files: {}\n"
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("model.pth")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(ValueError, match="is a link or device"):
        archive_members(bad)


def test_not_a_packed_model(tmp_path):
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("model.pth", "x")
    with pytest.raises(ValueError, match="no meta.yaml"):
        unpack_model(plain)
    with pytest.raises(ValueError, match="does not exist"):
        unpack_model(tmp_path / "absent.zip")
    (tmp_path / "text.zip").write_text("not an archive")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        unpack_model(tmp_path / "text.zip")


def test_model_errors_are_one_line_with_status_2(tmp_path, capsys):
    video = make_clip(tmp_path / "a.mp4")
    assert main(["--model", str(tmp_path / "absent.zip"), str(video)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main([str(video)]) == 2
    assert "give --model ARCHIVE" in capsys.readouterr().err
