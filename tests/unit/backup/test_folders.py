"""The folders a backup carries: a tar stream out, the same files back, nothing outside the scratch folder."""

import io
import tarfile

import pytest

from backup import folders


def test_a_folder_comes_back_file_for_file_without_uploads_in_progress(tmp_path):
    live = tmp_path / "recordings"
    (live / "c1").mkdir(parents=True)
    (live / "c1" / "x.mp3").write_bytes(b"ID3" * 1000)
    (live / "c2").mkdir()
    (live / "c2" / "y.wav").write_bytes(b"RIFF")
    (live / ".incoming").mkdir()
    (live / ".incoming" / "z.part").write_bytes(b"half")
    stream = []

    written = folders.write_folder(live, stream.append)
    read = folders.unpack(iter(stream), tmp_path / "back")

    assert written.as_dict() == read.as_dict() and written.files == 2 and written.bytes == 3004
    assert (tmp_path / "back" / "c1" / "x.mp3").read_bytes() == b"ID3" * 1000
    assert not (tmp_path / "back" / ".incoming").exists()


def test_a_missing_folder_is_carried_as_an_empty_one(tmp_path):
    stream = []
    assert folders.write_folder(tmp_path / "none", stream.append).files == 0
    assert folders.unpack(iter(stream), tmp_path / "back").files == 0


def test_an_archive_entry_naming_a_path_outside_the_folder_is_refused(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))

    with pytest.raises(tarfile.FilterError):
        folders.unpack(iter([raw.getvalue()]), tmp_path / "back")
    assert not (tmp_path / "outside.txt").exists()


def test_recordings_kept_in_a_bucket_are_not_carried(tmp_path):
    from crm_common.config import Settings

    assert folders.captured_folders(Settings(data_dir=str(tmp_path))) == {"recordings": tmp_path / "recordings"}
    assert folders.captured_folders(Settings(data_dir=str(tmp_path), recording_s3_bucket="b")) == {}
