"""deploy/ holds deployment files only; the CPU stand-ins live in standin/."""

from __future__ import annotations

from tests.deploy.files import DEPLOY, ROOT


def test_deploy_holds_no_code_or_models() -> None:
    tracked = [p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert tracked, "deploy/ is empty"
    assert not [p for p in tracked if p.suffix == ".py" or p.name == "config.pbtxt"]


def test_the_stand_ins_are_in_a_folder_of_their_own() -> None:
    stand_ins = ROOT / "standin"
    assert (stand_ins / "backends" / "vllm" / "model.py").is_file()
    assert (stand_ins / "backends" / "tensorrtllm" / "model.py").is_file()
    assert (stand_ins / "models" / "vllm-stand-in" / "config.pbtxt").is_file()
    assert (stand_ins / "tokenizer" / "tokenizer.json").is_file()
