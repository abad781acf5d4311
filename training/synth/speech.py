"""Speech for scenes: several voices and languages through espeak-ng and flite.

Sentences are built from per-language templates, so the text varies as well as
the voice. Rendered utterances are cached on disk (BINAURA_CACHE, default
~/.cache/binaura) because a TTS process start costs more than rendering a scene.
Some voices are held out of training: the benchmark's held-out instances.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from agent.core.errors import BinauraError
from training.synth.assets import packed

# (engine, voice, language). espeak-ng variants change pitch/formants (+m1, +f2, ...).
TRAIN_VOICES: tuple[tuple[str, str, str], ...] = (
    ("espeak-ng", "en-us+m1", "en"), ("espeak-ng", "en-gb+f2", "en"), ("espeak-ng", "en-us+m3", "en"),
    ("espeak-ng", "de+m2", "de"), ("espeak-ng", "de+f3", "de"),
    ("espeak-ng", "fr+m1", "fr"), ("espeak-ng", "es+f1", "es"), ("espeak-ng", "it+m4", "it"),
    ("flite", "kal16", "en"), ("flite", "awb", "en"), ("flite", "rms", "en"),
)
#: Voices only the benchmark uses (held-out speaker instances).
HELD_OUT_VOICES: tuple[tuple[str, str, str], ...] = (
    ("flite", "slt", "en"), ("espeak-ng", "es+m3", "es"), ("espeak-ng", "fr+f4", "fr"),
)

_TEMPLATES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "en": (["Could you", "Please", "I think we should", "Let's", "Did you", "We need to"],
           ["open", "close", "check", "bring", "move", "find", "clean"],
           ["the window", "the kitchen door", "the blue box", "my keys", "the garden gate",
            "the parcel", "the lights", "the back room"]),
    "de": (["Kannst du bitte", "Wir sollten", "Ich möchte", "Bitte"],
           ["das Fenster", "die Tür", "den Koffer", "die Lampe", "den Schlüssel"],
           ["öffnen", "schließen", "holen", "finden", "prüfen"]),
    "fr": (["Peux-tu", "Il faut", "Je voudrais", "Nous allons"],
           ["ouvrir", "fermer", "chercher", "ranger", "vérifier"],
           ["la fenêtre", "la porte", "les clés", "le colis", "la cuisine"]),
    "es": (["Puedes", "Tenemos que", "Quiero", "Vamos a"],
           ["abrir", "cerrar", "buscar", "limpiar", "traer"],
           ["la ventana", "la puerta", "las llaves", "la caja", "el jardín"]),
    "it": (["Puoi", "Dobbiamo", "Vorrei", "Andiamo a"],
           ["aprire", "chiudere", "cercare", "pulire", "portare"],
           ["la finestra", "la porta", "le chiavi", "la scatola", "il giardino"]),
}


def sentence(rng: np.random.Generator, lang: str) -> str:
    a, b, c = _TEMPLATES[lang]
    words = [a[rng.integers(len(a))], b[rng.integers(len(b))], c[rng.integers(len(c))]]
    if lang == "de":
        return f"{words[0]} {words[1]} {words[2]}."
    return f"{words[0]} {words[1]} {words[2]}" + ("?" if rng.random() < 0.3 else ".")


def cache_dir() -> Path:
    root = Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura"))
    return root / "speech"


def check_engines() -> None:
    missing = [e for e in ("espeak-ng", "flite") if shutil.which(e) is None]
    if missing:
        raise BinauraError(
            f"speech synthesis needs {', '.join(missing)} on PATH; install the Debian "
            f"package(s) {' '.join(missing)} (make setup does)"
        )


def tts(engine: str, voice: str, text: str, rate_hz: int, speed: int = 160, pitch: int = 50) -> np.ndarray:
    """Synthesize text to mono float64 at rate_hz, through the on-disk cache."""
    key = hashlib.sha1(f"{engine}|{voice}|{text}|{speed}|{pitch}|{rate_hz}".encode()).hexdigest()[:20]
    stand_in = packed()
    if stand_in is not None:  # no TTS programs here: a pooled utterance of this voice (kit.py)
        return stand_in.utterance(engine, voice, key, rate_hz)
    path = cache_dir() / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError, EOFError):
            path.unlink(missing_ok=True)  # a damaged cache entry: render again
    check_engines()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        if engine == "espeak-ng":
            cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text]
        else:
            cmd = ["flite", "-voice", voice, "-t", text, "-o", str(wav)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if res.returncode != 0 or not wav.is_file():
            raise BinauraError(f"{engine} failed for voice {voice!r}: {res.stderr.strip()[:200]}")
        data, r = sf.read(str(wav), dtype="float64", always_2d=True)
    x = data.mean(axis=1)
    if r != rate_hz:
        g = np.gcd(int(r), rate_hz)
        x = resample_poly(x, rate_hz // g, int(r) // g)
    # Return exactly what the cache will hold, so first and cached renders agree bit for bit.
    x = x.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        np.save(f, x, allow_pickle=False)
    os.replace(tmp_name, path)  # atomic: concurrent workers may race harmlessly
    return x


def voice_of(rng: np.random.Generator, held_out: bool = False) -> tuple[str, str, str]:
    """The talker's (engine, voice, language): the first draw of a speech instance's generator,
    from the held-out voices for held-out instances."""
    voices = HELD_OUT_VOICES if held_out else TRAIN_VOICES
    return voices[rng.integers(len(voices))]


def speech(rng: np.random.Generator, n: int, rate_hz: int, held_out: bool = False) -> np.ndarray:
    """A talker: sentences from one voice with pauses between them, n samples long."""
    engine, voice, lang = voice_of(rng, held_out)
    speed = int(rng.integers(130, 190))
    pitch = int(rng.integers(30, 70))
    out = np.zeros(n)
    t = int(rng.uniform(0.0, 0.2) * rate_hz)
    while t < n:
        # A small sentence pool per voice keeps the on-disk cache bounded.
        sub = np.random.default_rng(int(rng.integers(0, 24)) + 1000 * len(voice))
        u = tts(engine, voice, sentence(sub, lang), rate_hz, speed // 10 * 10, pitch // 10 * 10)
        m = min(len(u), n - t)
        out[t:t + m] += u[:m]
        t += len(u) + int(rng.uniform(0.2, 0.8) * rate_hz)
    return out
