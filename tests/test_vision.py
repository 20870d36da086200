"""Images in: a vision projector found beside its model, the pairing checked before a load, images
through the CLI, the API and a saved chat. Real llama.cpp (libmtmd) with the real Gemma 3 270M and a
tiny random projector written by the gguf package: assertions on structure and counts, never on
what the model says about a picture."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from cli_helpers import run
from localopen.app.conversation import vision
from localopen.core.gguf.header import read_header
from localopen.core.gguf.projector import pairing_problem, read_projector

from tiny_gguf import tiny_png, write_tiny_llama, write_tiny_projector

pytest.importorskip("llama_cpp")

GEMMA_WIDTH = 640  # Gemma 3 270M's embedding width


@pytest.fixture(scope="module")
def gemma_in_tmp(tmp_path_factory: pytest.TempPathFactory, gemma_path: Path) -> Path:
    """Gemma 3 270M on the temporary files' filesystem, once: the tests hard-link it from here."""
    here = tmp_path_factory.mktemp("gemma") / gemma_path.name
    try:
        os.link(gemma_path, here)
    except OSError:
        shutil.copyfile(gemma_path, here)  # another filesystem: copied once for the module
    return here


@pytest.fixture
def seeing(tmp_path: Path, gemma_in_tmp: Path) -> Path:
    """Gemma 3 270M in a folder with a Gemma 3 projector beside it, as a download leaves them."""
    folder = tmp_path / "ggml-org" / "gemma-vision"
    folder.mkdir(parents=True)
    model = folder / "gemma-3-270m-q4_k_m.gguf"
    os.link(gemma_in_tmp, model)  # a file of its own (the library keeps resolved paths), no copy
    write_tiny_projector(folder / "mmproj-gemma-f16.gguf", GEMMA_WIDTH)
    return model


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "picture.png"
    path.write_bytes(tiny_png())
    return path


def test_the_pairing_is_checked_by_width_and_family_from_the_headers(tmp_path: Path, gemma_path: Path) -> None:
    gemma = read_header(gemma_path)
    fits = read_projector(read_header(write_tiny_projector(tmp_path / "a.gguf", GEMMA_WIDTH)))
    assert fits.image_tokens == 4 and fits.family == "Gemma 3"  # (32 / 8 / 2)^2
    assert pairing_problem(fits, gemma, "a.gguf", "gemma.gguf") is None
    narrow = read_projector(read_header(write_tiny_projector(tmp_path / "b.gguf", 64)))
    said = pairing_problem(narrow, gemma, "b.gguf", "gemma.gguf")
    assert said is not None and "b.gguf" in said and "gemma.gguf" in said and "64 wide" in said and "640" in said
    qwen = read_projector(read_header(write_tiny_projector(tmp_path / "c.gguf", GEMMA_WIDTH, kind="qwen25vl")))
    said = pairing_problem(qwen, gemma, "c.gguf", "gemma.gguf")
    assert said is not None and "Qwen2.5-VL projector" in said and "gemma3 model" in said


def test_a_model_sees_images_with_the_projector_beside_it(seeing: Path, picture: Path) -> None:
    out = run("chat", str(seeing), "--template", "gemma", "-p", "What is this?", "--image", str(picture),
              "--image", str(picture), "--max-tokens", "4", "--json", timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    said = json.loads(out.stdout)
    text_only = run("chat", str(seeing), "--template", "gemma", "-p", "What is this?", "--max-tokens", "4", "--json")
    # Two images of 4 tokens each, with Gemma's image delimiters, made the prompt longer.
    assert said["prompt_tokens"] >= json.loads(text_only.stdout)["prompt_tokens"] + 8
    assert said["completion_tokens"] >= 1
    shown = run("chat", str(seeing), "--template", "gemma", "-p", "hi", "--image", str(picture), "--max-tokens", "2")
    assert "Sees images: mmproj-gemma-f16.gguf (gemma3 projector, about 4 tokens an image)" in shown.stderr


def test_a_wrong_projector_is_refused_in_words_naming_both_files(
    tmp_path: Path, gemma_path: Path, picture: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    model = folder / "gemma-3-270m-q4_k_m.gguf"
    model.symlink_to(gemma_path)  # read where it lies: its folder is the link's
    write_tiny_projector(folder / "mmproj-qwen-f16.gguf", 64)  # another model's width
    out = run("chat", str(model), "--template", "gemma", "-p", "hi", "--image", str(picture), timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "mmproj-qwen-f16.gguf" in out.stderr and "gemma-3-270m-q4_k_m.gguf" in out.stderr
    assert "made for another model" in out.stderr
    # Named by hand, it is refused at the load, before any answer.
    named = run("chat", str(model), "--template", "gemma", "-p", "hi", "--mmproj", str(folder / "mmproj-qwen-f16.gguf"))
    assert named.returncode != 0 and "made for another model" in named.stderr
    # Without a projector at all: the model reads text only, and says so.
    alone = run("chat", str(gemma_path), "--template", "gemma", "-p", "hi", "--image", str(picture), timeout=300)
    assert alone.returncode != 0 and "reads text only" in alone.stderr
    not_a_picture = tmp_path / "notes.txt"
    not_a_picture.write_text("hello")
    bad = run("chat", str(gemma_path), "-p", "hi", "--image", str(not_a_picture))
    assert bad.returncode != 0 and "not a picture" in bad.stderr


def test_a_projector_is_found_beside_its_model_and_never_listed_as_a_model(tmp_path: Path, seeing: Path) -> None:
    found = vision.pairing(seeing)
    assert found.projector == seeing.parent / "mmproj-gemma-f16.gguf" and found.facts is not None
    # Another repository's projector in the same folder (llama.cpp's cache) is passed over.
    write_tiny_projector(seeing.parent / "mmproj-other-f16.gguf", 64)
    assert vision.pairing(seeing).projector == seeing.parent / "mmproj-gemma-f16.gguf"
    out = run("import", str(seeing.parent / "mmproj-gemma-f16.gguf"))
    assert out.returncode != 0 and "vision projector" in out.stderr and "not a model" in out.stderr
    text_model = write_tiny_llama(tmp_path / "text.gguf")
    assert vision.pairing(text_model).projector is None


def test_the_apis_take_images_as_data_urls_and_refuse_what_they_cannot_take(seeing: Path, gemma_path: Path) -> None:
    import anthropic
    import httpx2 as httpx
    import openai

    from localopen.app.context import AppContext
    from localopen.core.options import LoadOptions
    from localopen.core.store.library_db import import_file
    from test_server import Running

    ctx = AppContext()
    import_file(ctx.db, seeing)
    running = Running(ctx, options=LoadOptions(n_ctx=2048))
    running.server.template = "gemma"  # the base model has no template of its own
    try:
        listed = {m.id: m.model_extra["input_modalities"] for m in running.client.models.list().data}
        assert listed == {"gemma-3-270m-q4_k_m": ["text", "image"]}
        url = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
        ask = [{"type": "text", "text": "What is in the picture?"}, {"type": "image_url", "image_url": {"url": url}}]
        answer = running.client.chat.completions.create(
            model="gemma-3-270m-q4_k_m", messages=[{"role": "user", "content": ask}], max_tokens=3, temperature=0
        )
        plain = running.client.chat.completions.create(
            model="gemma-3-270m-q4_k_m", messages=[{"role": "user", "content": ask[:1]}], max_tokens=3, temperature=0
        )
        assert answer.usage.prompt_tokens >= plain.usage.prompt_tokens + 4  # the picture's 4 tokens, delimited
        # Anthropic's base64 image block and Ollama's images list reach the same model.
        claude = anthropic.Anthropic(base_url=running.config.base_url.removesuffix("/v1"), api_key="none")
        block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": url.split(",")[1]}}
        said = claude.messages.create(
            model="gemma-3-270m-q4_k_m", max_tokens=3,
            messages=[{"role": "user", "content": [block, {"type": "text", "text": "Describe it."}]}],
        )  # fmt: skip
        assert said.usage.input_tokens >= plain.usage.prompt_tokens
        base = running.config.base_url.removesuffix("/v1")
        ollama = httpx.post(f"{base}/api/chat", json={"model": "gemma-3-270m-q4_k_m", "stream": False,
                            "messages": [{"role": "user", "content": "Describe it.", "images": [url.split(",")[1]]}],
                            "options": {"num_predict": 3}}, timeout=120)  # fmt: skip
        assert ollama.status_code == 200, ollama.text
        # What cannot be taken is a 400 in words: a web address, not a picture, too many.
        for content, words in (
            ([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}], "does not fetch images"),
            ([{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}], "not a picture"),
            ([{"type": "image_url", "image_url": {"url": url}}] * 9, "at most 8"),
        ):
            with pytest.raises(openai.BadRequestError) as refused:
                running.client.chat.completions.create(
                    model="gemma-3-270m-q4_k_m", messages=[{"role": "user", "content": content}], max_tokens=1
                )
            assert words in str(refused.value)
    finally:
        running.stop()
    # A model without a projector: the request is refused in words, not answered blind.
    ctx = AppContext()
    import_file(ctx.db, write_tiny_llama(seeing.parent.parent / "text-only.gguf"))
    running = Running(ctx, options=LoadOptions(n_ctx=512))
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            running.client.chat.completions.create(
                model="text-only", messages=[{"role": "user", "content": ask}], max_tokens=1
            )
        assert "reads text only" in str(refused.value)
    finally:
        running.stop()


def test_the_benchmark_times_an_images_encoding_for_a_vision_model(seeing: Path, gemma_path: Path) -> None:
    out = run("bench", str(seeing), "-p", "32", "-n", "4", "-r", "2", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert all(r["image_encode_ms"] > 0 and r["image_tokens"] == 4 for r in results)  # 896x896 -> fixed 32x32, 4
    shown = run("bench", str(seeing), "-p", "32", "-n", "4", "-r", "1")
    assert "sees images: one 896x896 picture encodes in" in shown.stdout
    text_only = json.loads(run("bench", str(gemma_path), "-p", "32", "-n", "4", "-r", "1", "--json").stdout)
    assert all(r["image_encode_ms"] is None for r in text_only)


def test_info_shows_the_projector_and_its_memory_joins_the_fit(seeing: Path, gemma_path: Path) -> None:
    said = json.loads(run("info", str(seeing), "--json").stdout)
    projector = said["projector"]
    assert projector["type"] == "gemma3" and projector["image_tokens"] == 4 and projector["projection_dim"] == 640
    assert said["fit"]["memory"]["projector"] == projector["file_size"] > 0
    assert said["capabilities"]["vision"] == {"projector": "mmproj-gemma-f16.gguf"}
    alone = json.loads(run("info", str(gemma_path), "--json").stdout)
    assert alone["projector"] is None and alone["fit"]["memory"]["projector"] == 0
    assert alone["fit"]["memory"]["total"] + projector["file_size"] == said["fit"]["memory"]["total"]
    text = run("info", str(seeing)).stdout
    assert "sees images (mmproj-gemma-f16.gguf)" in text and "vision projector mmproj-gemma-f16.gguf: gemma3" in text


def test_a_download_fetches_the_projector_beside_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A vision repository on the (fake) Hub: pulling a quantization fetches the model and its most
    precise projector, verified, into one folder; the library lists the model alone, which sees."""
    from localopen.app.context import AppContext
    from localopen.core.store.library_db import list_models, scan

    from fake_hub import FakeHub, Repo

    text = write_tiny_llama(tmp_path / "t.gguf").read_bytes()
    projector = write_tiny_projector(tmp_path / "p.gguf", 64, kind="idefics3").read_bytes()  # a llama family's
    hub = FakeHub().start()
    hub.add(
        Repo(
            "org/Vision-GGUF",
            files={
                "tiny-Q4_K_M.gguf": text,
                "tiny-F16.gguf": text + b"\0" * 32,
                "mmproj-tiny-f16.gguf": projector,
                "mmproj-tiny-Q8_0.gguf": projector + b"\0" * 32,
            },
        )
    )
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    try:
        found = json.loads(run("search", "vision", "--json", env={**os.environ}).stdout)
        [listed] = [r for r in found if r["id"] == "org/Vision-GGUF"]
        # Hub search says it sees images; a projector's precision is not one of the model's quants.
        assert listed["vision"] is True and listed["quants"] == ["F16", "Q4_K_M"]
        out = run("pull", "org/Vision-GGUF", "--quant", "F16", timeout=120, env={**os.environ})
        assert out.returncode == 0, out.stderr
    finally:
        hub.stop()
    ctx = AppContext()
    scan(ctx.db, ctx.models_dir)
    [model] = list_models(ctx.db)  # the projector is never a model of its own
    assert model.filename == "tiny-F16.gguf"
    beside = sorted(p.name for p in model.path.parent.iterdir())
    assert beside == ["mmproj-tiny-f16.gguf", "tiny-F16.gguf"]  # the f16 projector, not the Q8_0 one
    assert (model.path.parent / "mmproj-tiny-f16.gguf").read_bytes() == projector
    assert vision.pairing(model.path).projector == model.path.parent / "mmproj-tiny-f16.gguf"


def test_a_picture_that_claims_too_many_pixels_or_cannot_be_decoded_is_refused_in_words(
    seeing: Path, tmp_path: Path
) -> None:
    png = tiny_png()
    bomb = png[:16] + (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big") + png[24:]  # a 3.6 GP claim
    with pytest.raises(vision.ImageError, match="claims 60000x60000 pixels"):
        vision.image_part(bomb, "The bomb")
    jfif = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = b"\xff\xc0\x00\x11\x08" + (100).to_bytes(2, "big") + (200).to_bytes(2, "big") + b"\x03" + b"\x00" * 9
    assert vision.image_pixels(jfif + frame) == (200, 100)
    assert vision.image_kind(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None  # libmtmd's decoder reads no WebP
    broken = tmp_path / "broken.png"
    broken.write_bytes(png[:40] + b"\x00" * 200)  # a PNG's header, then nothing a decoder can read
    out = run("chat", str(seeing), "--template", "gemma", "-p", "hi", "--image", str(broken), timeout=300)
    assert out.returncode != 0 and "Image 1 could not be read" in out.stderr and "Traceback" not in out.stderr


def test_a_probe_measures_the_projector_beside_the_model_before_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gemma_path: Path
) -> None:
    """The Hub file and its projector are both read by their headers and replicated with zero
    data: the probe loads the pair, so the projector's memory and an image's encoding are measured
    before anything is downloaded."""
    from fake_hub import FakeHub, Repo

    projector = write_tiny_projector(tmp_path / "p.gguf", GEMMA_WIDTH).read_bytes()
    hub = FakeHub().start()
    hub.add(Repo("org/Seeing-GGUF", {"seeing-Q4_K_M.gguf": gemma_path.read_bytes(), "mmproj-f16.gguf": projector}))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    try:
        out = run("probe", "org/Seeing-GGUF", "--quant", "Q4_K_M", "--json", timeout=300, env={**os.environ})
    finally:
        hub.stop()
    assert out.returncode == 0, out.stderr
    said = json.loads(out.stdout)
    assert said["projector"]["type"] == "gemma3" and said["projector"]["file_size"] == len(projector)
    assert said["image_encode_ms"] > 0
    assert said["bytes_fetched"] < len(gemma_path.read_bytes()) * 0.05  # headers, not weights


def test_a_picture_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    with huge.open("wb") as fh:
        fh.write(tiny_png()[:32])
        fh.truncate(30 * 2**20)  # sparse: 30 MB that were never written
    with pytest.raises(vision.ImageError, match="huge.png is 30 MB; an image may be at most 20 MB"):
        vision.read_image(huge)
    with pytest.raises(vision.ImageError, match="cannot be read"):
        vision.read_image(tmp_path / "gone.png")
