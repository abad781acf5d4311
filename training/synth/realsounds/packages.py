"""Which registry packages hold real recordings, and which of their files are which class.

Every mapping is an explicit table (a glob relative to the package's root -> a class of
agent.core.labels.LABELS, or ``ambience:<kind>`` for real backgrounds), checked by listening
to names and pictures on the unpacked packages (issue 22, ../shared/REAL_WORLD.md), never
guessed from a keyword, and heard again by YAMNet (`binaura synth-sounds --audit`,
export/sounds_audit.py): a file it hears as another class is looked at and left out by name.
The first matching rule wins; audio files no rule matches are left out and counted. Versions
(and SHA-256 of the downloaded file) are pinned: another version is refused, not silently used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

AMBIENCE = "ambience:"
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".mp3", ".flac", ".opus")


@dataclass(frozen=True)
class PackageSpec:
    """One registry package. root: the folder (inside the unpacked package) the rules are
    relative to; rules: (glob, target) pairs; describe: path -> {recording, speaker, language}
    overrides (default: every file its own recording); container: "opensfx" for a .cat file."""

    name: str
    registry: str  # "debian" | "npm" | "pypi"
    version: str
    sha256: str | None
    license: str
    root: str
    rules: tuple[tuple[str, str], ...]
    sets: tuple[str, ...] = ("core", "full")
    describe: Callable[[str], dict] | None = None
    container: str | None = None
    notes: str = ""


def _stem_take(path: str) -> dict:
    """`default_grass_footstep.2.ogg` -> recording `default_grass_footstep` (takes of one session)."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return {"recording": re.sub(r"([._]?\d+)$", "", stem)}


def _ktuberling(path: str) -> dict:
    lang = path.split("/", 1)[0]
    # sr, sr@latin, sr@ijekavian... are one volunteer's recordings in several scripts
    return {"speaker": f"ktuberling/{lang.split('@')[0]}", "language": lang.split("@")[0],
            "recording": f"{lang.split('@')[0]}/{path.rsplit('/', 1)[-1].rsplit('.', 1)[0]}"}


def _qabcs(path: str) -> dict:
    if path.startswith("all/"):
        return {}
    lang = path.split("/", 1)[0]
    return {"speaker": f"qabcs/{lang}", "language": lang}


def _buckle(path: str) -> dict:
    return {"recording": "key-" + path.rsplit("/", 1)[-1].split("-", 1)[0]}  # press and release of one key


def _triplea(path: str) -> dict:
    name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    # The same take is filed under several game events (and game_start/your_turn air raid alarm).
    return {"recording": re.sub(r"^.*?_\d\d_", "", name)}


_Q = "abcs/all/noises/{}.ogg"
# "albatross" is left out: YAMNet hears an engine and a bang in it, no bird
# (export/sounds_audit.py, 2026-12-02).
_QABCS_BIRDS = ("bird booby crow duck eagle-owl flamingo goose guinea_fowl heron iora owl pelican "
                "pheasant quail quetzal rooster sparrow stork vulture wood_grouse").split()
# The instruments of qabcs's own "instrument" picture folder that are played music (not toys,
# whistles or unknown objects).
_QABCS_MUSIC = ("accordion aeoline bagpipes bass_drum cello changu clarinet cuica cymbals drums dulzaina "
                "electric_guitar erhu flute gamba grand_piano guitar hand_organ hang harmonica harp ipu kazoo "
                "lute maracas natural_horn ney oboe organ piano quena rabel recorder rozhok saxophone slit_drum "
                "squeezebox timpani topshuur trumpet ukulele violin washint western_concert_flute xun "
                "xylophone yangqin youhikko yueqin zhaleyka zither zurna").split()
_QABCS_ENGINES = "airplane excavator helicopter quadrocopter tractor".split()

#: openttd-opensfx container entries (index -> target); the rest are game effects or
#: mixes with toy sounds ("Toyland") and are left out. Entry 14, "Level crossing", was an
#: alarm until the audit: a passing train drowns its bell (YAMNet: vehicle 0.98, alarm 0.00).
OPENSFX_ENTRIES: dict[int, str] = {
    8: "engine", 9: "engine", 24: "engine", 25: "engine", 27: "engine", 28: "engine", 59: "engine",
    61: "engine", 35: "car_horn", 29: "clapping", 66: "bird", 72: "bird",
    52: "ambience:wind", 57: "ambience:wind",
}

PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec("ktuberling-data", "debian", "4:22.12.3-1",
                "fba44c875bfa31ea488dadd9263e87a4dcaea0bd47d28817f6c0dc6d2af970ed",
                "GPL-2+/GFDL/CC0/CC-BY", "usr/share/ktuberling/sounds",
                (("*/*.ogg", "speech"), ("*/*.wav", "speech")), describe=_ktuberling,
                notes="single words, one volunteer per language; es fi fr it nl pt sv are 8 kHz"),
    PackageSpec("qabcs-data", "debian", "1.0.2-6",
                "3484da4cf258e6f3a39a1fc99bbfcaddfd679cff96a8fa792f261ab0a2bf9d86",
                "GPL-3+/CC0/PD", "usr/share/qabcs",
                tuple((_Q.format(n), "bird") for n in _QABCS_BIRDS)
                + tuple((_Q.format(n), "music") for n in _QABCS_MUSIC)
                + tuple((_Q.format(n), "engine") for n in _QABCS_ENGINES)
                # "dogmatix" (a cartoon dog's picture) is a plucked-string jingle, not a bark
                # (YAMNet: music 1.00 on every patch): left out since the audit
                + ((_Q.format("dog"), "dog"),
                   (_Q.format("horn"), "car_horn"),  # a bulb horn's honk (its picture)
                   (_Q.format("keyboard"), "keyboard"),
                   # only the English and Ukrainian words are human voices; the others are TTS
                   ("abcs/en/sounds/words/*.ogg", "speech"), ("abcs/uk/sounds/words/*.ogg", "speech")),
                describe=lambda p: _qabcs(p.removeprefix("abcs/"))),
    PackageSpec("openttd-opensfx", "debian", "1.0.3-2",
                "2898b4677a3caccc4abc08fb4cf83319047b5a04729291deb5c77a8cd713c006",
                "per entry (CC-BY-3.0/CC0)", "usr/share/games/openttd/baseset/opensfx",
                (("opensfx.cat", "container"),), container="opensfx"),
    PackageSpec("minetest-data", "debian", "5.6.1+dfsg+~1.9.0mt8+dfsg-2",
                "91371dd2bd51cfcd4fa60c138667989a47047dfe1a47f7523b9ad1782d397585",
                "CC-BY-SA-3.0/CC0", "usr/share/games/minetest/games/minetest_game/mods",
                # wading: YAMNet hears water (0.68-0.78) and no footsteps, so neither label fits
                (("default/sounds/default_water_footstep*.ogg", "skip"),
                 ("default/sounds/default_*_footstep*.ogg", "footsteps"),
                 ("default/sounds/default_break_glass.*.ogg", "glass_breaking"),
                 ("env_sounds/sounds/env_sounds_water.*.ogg", "water")), describe=_stem_take),
    PackageSpec("bucklespring-data", "debian", "1.4.0-2",
                "2add9f5583b3afc9c0b528066f4578baff930b74d4a94c8a25d103ef79a444e5",
                "GPL-2+", "usr/share/buckle/wav", (("*.wav", "keyboard"),), describe=_buckle),
    PackageSpec("triplea", "debian", "1.9.0.0.7062-2",
                "f43196c458195a7a99afdc7966269039ce31837df7a8d9693e2b0bab9245720e",
                "GPL-2+", "usr/share/games/triplea/assets/sounds",
                (("generic/chat_join_game/*door_bell.mp3", "doorbell"),
                 ("generic/*/*air_raid_alarm.mp3", "siren"),
                 ("ww2/battle_retreat_submerge/*sub_diving_alarm.mp3", "alarm"),
                 ("generic/others/*type_writer_short.mp3", "keyboard"),
                 ("ww2/political_action_successful/*typewriter.mp3", "keyboard"),
                 ("ww2/battle_air/battle_air_01_air_flyby.mp3", "engine"),
                 ("ww2/battle_air/battle_air_02_air_close_flyby.mp3", "engine"),
                 ("ww2/territory_capture_blitz/*motor_engine_noise.mp3", "engine"),
                 ("classical/battle_air/*hawk_*.mp3", "bird"),
                 ("ww2/required_your_turn_series_*/*Anthem_Intro.mp3", "music"),
                 ("misc/turn_start/*Anthem_Intro*.mp3", "music"),
                 ("generic/game_won/*people_cheering*.mp3", "ambience:crowd")),
                describe=_triplea, notes="a Java game: unpacked only, never installed"),
    PackageSpec("orage-data", "debian", "4.16.0-2",
                "b12d019a7392221f08c78845327d895b99cdb04d9685fcb63ba22008703f8cc4",
                "GPL-2+", "usr/share/orage/sounds", (("Knock.wav", "knocking"), ("Phone.wav", "telephone"))),
    PackageSpec("scorched3d-data", "debian", "44+dfsg-8",
                "b0be0a6d561966a62b1f135e0e6f5681c85f12e34ecad5777cb1af9fbcb7f1da",
                "GPL-2+/CC-BY-SA-3.0", "usr/share/games/scorched3d/data/globalmods",
                (("apoc/data/wav/misc/carhorn?.wav", "car_horn"),
                 ("apoc/data/wav/misc/dog*.wav", "dog"),
                 ("apoc/data/wav/misc/firetruck.wav", "siren"), ("apoc/data/wav/misc/policecar.wav", "siren"),
                 ("apoc/data/wav/misc/cessna.wav", "engine"), ("apoc/data/wav/misc/helicopter.wav", "engine"),
                 ("none/data/wav/misc/apache_1.wav", "engine"), ("none/data/wav/misc/f1[68]_?.wav", "engine"),
                 ("none/data/wav/misc/jet.wav", "engine"), ("none/data/wav/misc/t38.wav", "engine"),
                 ("none/data/wav/misc/birdchirp?.wav", "bird"), ("none/data/wav/misc/birds?.wav", "bird"),
                 ("none/data/wav/misc/gull?.wav", "bird"),
                 ("none/data/wav/misc/rain.wav", "ambience:rain"),
                 ("none/data/wav/misc/oceanwaves.wav", "ambience:ocean"),
                 ("apoc/data/wav/misc/cheeringloop.wav", "ambience:crowd"),
                 ("apoc/data/wav/misc/citysounds.wav", "ambience:city")),
                notes="all 11 kHz"),
    PackageSpec("ion-sound", "npm", "3.0.7",
                "0b2314c9b832401e1ca17a3ad8075e54303df38fee69673b2fd04c7b72353e40",
                "MIT", "package/sounds",
                # each sound ships as .ogg and .mp3 of one recording: the .ogg only
                (("door_bell.ogg", "doorbell"), ("bell_ring.ogg", "doorbell"),
                 ("light_bulb_breaking.ogg", "glass_breaking"), ("keyboard_desk.ogg", "keyboard"))),
    PackageSpec("linphone-common", "debian", "5.1.65-4",
                "4d6fa3b4401a7f320387351241a917b9945f8afbe342ab8bbf5ac8cec4713bfa",
                "GPL-3+/CC0", "usr/share/sounds/linphone",
                (("rings/oldphone-mono.wav", "telephone"), ("hello16000.wav", "speech")),
                describe=lambda p: {"speaker": "linphone/hello"} if p.startswith("hello") else {}),
    PackageSpec("libjs-jsxc", "debian", "3.4.4+dfsg-2",
                "8a50af44eb84812bcbff0cd340676a41b649b7aebd7b68d02e9ee0f2daf60f57",
                "Expat/CC-BY", "usr/share/libjs-jsxc/sound", (("Rotary-Phone6.mp3", "telephone"),)),
    PackageSpec("minetest-mod-homedecor", "debian", "20210327.1-2",
                "555d078c37e2a26a66aea20affa8031ea7ff05e9def7c2f9eb60cd422feb9f6c",
                "CC-BY-SA-4.0", "usr/share/games/minetest/mods/homedecor",
                (("homedecor_electrical/sounds/homedecor_doorbell.ogg", "doorbell"),
                 ("homedecor_common/sounds/homedecor_faucet.ogg", "water"),
                 ("homedecor_bathroom/sounds/homedecor_shower.ogg", "water"))),
    PackageSpec("lugaru-data", "debian", "1.2-6",
                "6a25e8d2d7c2d94b7873669d1f52137b2ba56e86ba5c2f08fefeacd65e526023",
                "CC-BY-SA/GPL-2+", "usr/share/games/lugaru/Sounds",
                (("Bark*.ogg", "dog"), ("FootStep*.ogg", "footsteps"), ("Hawk.ogg", "bird"),
                 ("Music*.ogg", "music"), ("Wind.ogg", "ambience:wind")), describe=_stem_take),
    PackageSpec("brainparty-data", "debian", "0.61+dfsg-7",
                "fc01026824b6274eff222c9163ba134fc90889bd7d688091ffdee8e12cefc4d4",
                "GPL", "usr/share/games/brainparty", (("glass_break.wav", "glass_breaking"),)),
    PackageSpec("sonic-pi-samples", "debian", "3.2.2~repack-8",
                "25f2312d2fae005e6ad0f4726b8ed3084e776006a5a132083506e960224ac79d",
                "CC0", "usr/share/sonic-pi/samples",
                (("loop_3d_printer.flac", "skip"), ("loop_*.flac", "music"), ("guit_*.flac", "music"),
                 ("ambi_piano.flac", "music"), ("ambi_choir.flac", "music"), ("misc_crow.flac", "bird"))),
    # Added 2026-12-02 for the thin classes (dog, clapping, footsteps, alarm, siren, telephone),
    # each file named by its package as that sound and not heard as another by the audit.
    PackageSpec("scratch", "debian", "1.4.0.6~dfsg1-6.1",
                "36c582eb93110f64f06c4e685c41e933ccba2fa68db12f79b10bfe840b21fc10",
                "CC-BY-SA-3.0 (Media/)", "usr/share/scratch/Media/Sounds",
                (("Animal/Dog[12].wav", "dog"),
                 ("Animal/Bird.wav", "bird"), ("Animal/Owl.wav", "bird"), ("Animal/Rooster.wav", "bird"),
                 ("Animal/Goose.wav", "bird"), ("Animal/Duck.wav", "bird"),
                 ("Percussion/HandClap.wav", "clapping"), ("Human/Footsteps-[12].*", "footsteps"),
                 ("Effects/Typing.mp3", "keyboard"),
                 ("Effects/WaterRunning.mp3", "water"), ("Effects/WaterDrop.mp3", "water"),
                 ("Effects/Ripples.wav", "water"), ("Effects/Bubbles.wav", "water"),
                 ("Effects/MotorcyclePassing.wav", "engine"), ("Effects/CarPassing.wav", "engine"),
                 ("Music Loops/*.mp3", "music")),
                notes="Scratch 1.4's sound library; BellToll (a church bell) and SewingMachine are not mapped"),
    PackageSpec("micropolis-data", "debian", "0.0.20071228-10",
                "8d30b1cd0eb340f42ae71ea596a28bbdd57111afa1f381755d8c445a5e8e7b5c",
                "GPL-3+", "usr/share/games/micropolis/res/sounds", (("siren.wav", "siren"),)),
    PackageSpec("alienblaster-data", "debian", "1.1.0-11",
                "53516e464d4604da8a72021d1d36a75c66bb3573dd99e20d381fc108994d17ee",
                "GPL-2+", "usr/share/games/alienblaster/sound", (("alarm.wav", "alarm"),), notes="11 kHz"),
    PackageSpec("ceferino-data", "debian", "0.97.8+svn37-2.2",
                "b92c98d69ecf9c551a4e053b01e17ced5b53297de5edac765f7577c76a02cc04",
                "GPL-2+", "usr/share/games/ceferino/sounds", (("alarma.wav", "alarm"),), notes="11 kHz"),
    PackageSpec("gnome-audio", "debian", "2.22.2-1.2",
                "05d5eb10c07dfbe251a637cb83784ec9ed44ec54a6c26339c8d8fea9a4d886c0",
                "CC-BY-SA-2.0/CC-BY-3.0", "usr/share/sounds", (("phone.wav", "telephone"),)),
    PackageSpec("circuslinux-data", "debian", "1.0.3-34.1",
                "0ebf20793f5fdfab35b05906b483d0b8b78bac543121154e89bfedfca09b6af0",
                "GPL", "usr/share/games/circuslinux/data/sounds", (("applause.wav", "clapping"),),
                notes="11 kHz"),
)


def _tuxpaint(path: str) -> dict:
    m = re.search(r"_desc(?:_([A-Za-z@]+))?\.ogg$", path)
    if not m:
        return {}
    lang = m.group(1) or "en"  # "_desc.ogg" is the English description
    return {"speaker": f"tuxpaint/{lang}", "language": lang}


def _hedgewars(path: str) -> dict:
    if not path.startswith("Sounds/voices/"):
        return {}
    voice = path.split("/")[2]
    # packs named <name>_<lang> are translations; the others speak English (accents acted)
    lang = voice.rsplit("_", 1)[-1] if "_" in voice else "en"
    return {"speaker": f"hedgewars/{voice}", "language": lang}


#: The large packages: only in the "full" set.
FULL_ONLY: tuple[PackageSpec, ...] = (
    PackageSpec("tuxpaint-stamps-default", "debian", "2022.06.04-1",
                "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34",
                "GPL-2", "usr/share/tuxpaint/stamps",
                (("*_desc*.ogg", "speech"), ("animals/birds/*.ogg", "bird"), ("animals/mammals/dog.ogg", "dog")),
                sets=("full",), describe=_tuxpaint,
                notes="spoken stamp descriptions, about one volunteer per language"),
    PackageSpec("hedgewars-data", "debian", "1.0.2-6",
                "722225903a72604403e6e0026e40e9a6953f47a74d94efc5f55504bc05bb4761",
                "GPL-2", "usr/share/games/hedgewars/Data",
                # acted lines of 14 voice packs ("Robot" is processed speech: left out), and the music
                (("Sounds/voices/Robot/*", "skip"), ("Sounds/voices/*/*.ogg", "speech"), ("Music/*.ogg", "music")),
                sets=("full",), describe=_hedgewars),
)
PACKAGES = PACKAGES + FULL_ONLY


def package_set(name: str) -> tuple[PackageSpec, ...]:
    """The packages of a named set (core: small and covering every class; full: and the large ones)."""
    return tuple(p for p in PACKAGES if name in p.sets)


def target_of(spec: PackageSpec, rel_path: str) -> str | None:
    """The class (or ambience:<kind>, "skip", "container") of a file, by the first matching rule."""
    from fnmatch import fnmatchcase  # noqa: PLC0415

    for pattern, target in spec.rules:
        if fnmatchcase(rel_path, pattern):
            return target
    return None
