"""Caches prove what they remember: the speed choice (`devices/autotune.py`) is used only while
its files match and its engine is installed here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from edge_retalk.models import model_path


def test_a_remembered_choice_is_used_only_while_its_engine_imports_and_its_files_match(tmp_path, monkeypatch):
    """A cache written where OpenVINO won (another environment) names its form; where OpenVINO
    is not installed the forms are measured again, with one log line, instead of failing; a
    rewritten file is measured again too."""
    from edge_retalk.devices import autotune
    from edge_retalk.generators.learned import RENDERER_FORMS

    monkeypatch.setenv("EDGE_RETALK_CACHE", str(tmp_path))
    forms = [model_path(name) for name in RENDERER_FORMS]
    assert any(form.suffix == ".xml" for form in forms)
    with monkeypatch.context() as patch:
        patch.setattr(autotune, "engine_installed", lambda model: True)
        patch.setattr(autotune, "measure", lambda model, threads: autotune.Measurement(
            model.name, 1.0 if model.suffix == ".xml" else 5.0))
        assert autotune.fastest("mouth_renderer", forms, 1).suffix == ".xml"
    code = ("import logging, sys; sys.modules['openvino'] = None; logging.basicConfig(level=logging.WARNING); "
            "from edge_retalk.devices import autotune; from edge_retalk.generators.learned import RENDERER_FORMS; "
            "from edge_retalk.models import model_path; "
            "print(autotune.fastest('mouth_renderer', [model_path(n) for n in RENDERER_FORMS], 1).name)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(".tflite")
    assert result.stderr.strip().splitlines() == [
        "WARNING:edge_retalk.devices.autotune:measuring which form of mouth_renderer runs fastest here "
        "(the remembered mouth_renderer.int8.xml needs an engine not installed here)"], result.stderr

    copies = []
    for form in forms:
        for file in form.parent.glob(form.name.split(".")[0] + "." + form.name.split(".")[1] + "*"):
            shutil.copy(file, tmp_path / file.name)
        copies.append(tmp_path / form.name)
    measured = []
    monkeypatch.setattr(autotune, "measure", lambda model, threads: measured.append(model.name) or
                        autotune.Measurement(model.name, 1.0 if model.suffix == ".tflite" else 5.0))
    autotune.fastest("mouth_renderer_copy", copies, 1)
    autotune.fastest("mouth_renderer_copy", copies, 1)
    assert len(measured) == len(copies), "an unchanged cache is read"
    os.utime(copies[0], ns=(0, 0))
    autotune.fastest("mouth_renderer_copy", copies, 1)
    assert len(measured) == 2 * len(copies), "a changed file is measured again"
