from __future__ import annotations

import json
import subprocess
import sys

from hepslim.cli import main


def test_codecs_table_lists_every_builtin(capsys):
    assert main(["codecs"]) == 0
    out = capsys.readouterr().out
    for cid in ("zstd", "lz4", "zlib", "lzma", "blosc", "bytestreamsplit", "delta", "bitpack", "mantissa",
                "quantize"):
        assert cid in out
    assert "keepbits" in out


def test_codecs_json_has_family_params_origin(capsys):
    assert main(["codecs", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mantissa"]["family"] == "lossy"
    assert rows["zstd"]["family"] == "lossless"
    assert rows["zstd"]["kind"] == "bytes->bytes"
    assert rows["zstd"]["parameters"]["level"]["allowed"] == "-7..22"
    assert all(r["origin"] == "built-in" for r in rows.values() if not r["id"].startswith("acme"))


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "hepslim.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "hepslim" in out.stdout
