"""Sentence grammars for the synthetic corpus.

``lrs3``: a templated English grammar in the register of recorded talks (LRS3 is cut
from TED/TEDx talks) with a vocabulary of several hundred words, sentences of 4..12
words, uppercase like LRS3 transcripts.

``grid``: the fixed six-slot structure of the GRID corpus (command colour preposition
letter digit adverb), e.g. ``BIN BLUE AT F TWO NOW``.
"""

from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

GRAMMARS: Tuple[str, ...] = ("lrs3", "grid")

MIN_WORDS = 4
MAX_WORDS = 12

# ----------------------------------------------------------------------------- lrs3
_W: Dict[str, Sequence[str]] = {
    "DET": "THE THE THE A THIS THAT EVERY EACH ANOTHER ONE".split(),
    "POSS": "OUR THEIR MY YOUR HIS HER ITS".split(),
    "ADJ": (
        "BIG SMALL OLD NEW GOOD GREAT SIMPLE DIFFERENT IMPORTANT REAL WHOLE LOCAL GLOBAL "
        "HUMAN SOCIAL PUBLIC PRIVATE FREE STRONG DEEP DARK BRIGHT QUIET HAPPY STRANGE "
        "CAREFUL FAMOUS MODERN ANCIENT BEAUTIFUL DIFFICULT EASY RICH POOR YOUNG LONG SHORT "
        "EARLY LATE SPECIAL CLEAR COMMON GREEN BLUE RED WHITE BLACK WARM COLD HEAVY LIGHT "
        "SAFE NATURAL FAST SLOW OPEN HIDDEN BASIC CENTRAL ENTIRE FINAL LARGE NORMAL POWERFUL "
        "RARE SERIOUS SMART TINY WILD"
    ).split(),
    "NOUN": (
        "WORLD IDEA PROBLEM QUESTION STORY SYSTEM COMPANY CITY COUNTRY FAMILY CHILD TEACHER "
        "STUDENT DOCTOR SCIENTIST ARTIST WRITER FRIEND MOTHER FATHER BROTHER SISTER BRAIN "
        "BODY HEART VOICE WATER ENERGY PLANET OCEAN RIVER FOREST MOUNTAIN ISLAND GARDEN "
        "VILLAGE STREET HOUSE SCHOOL HOSPITAL LIBRARY MUSEUM MARKET BRIDGE MACHINE COMPUTER "
        "ROBOT PHONE CAMERA PICTURE MAP BOOK LETTER MESSAGE SONG MOVIE GAME PROJECT PLAN "
        "DESIGN MODEL NUMBER PATTERN SIGNAL NETWORK PROGRAM LANGUAGE WORD SENTENCE ANSWER "
        "REASON RESULT CHANGE CHOICE FUTURE HISTORY MOMENT MINUTE HOUR YEAR CENTURY NIGHT "
        "MORNING SUMMER WINTER LIGHT COLOR SOUND SPACE TIME PLACE ROOM DOOR WINDOW TABLE "
        "CHAIR CAR TRAIN BOAT ROCKET SHIP CELL GENE VIRUS MEDICINE FOOD BREAD COFFEE MONEY "
        "BUSINESS MISSION JOURNEY EXPERIMENT DISCOVERY INVENTION MEMORY DREAM FEAR HOPE "
        "SMILE TRUTH SECRET SURPRISE COMMUNITY AUDIENCE LEADER NEIGHBOR"
    ).split(),
    "NAME": (
        "ANNA DAVID MARIA JAMES SARAH PETER LUCY MICHAEL EMMA DANIEL GRACE THOMAS"
    ).split(),
    # (base, past) pairs of transitive verbs
    "TV": [
        ("BUILD", "BUILT"), ("CHANGE", "CHANGED"), ("FIND", "FOUND"), ("MAKE", "MADE"),
        ("SEE", "SAW"), ("KNOW", "KNEW"), ("SHARE", "SHARED"), ("TAKE", "TOOK"),
        ("GIVE", "GAVE"), ("BRING", "BROUGHT"), ("SHOW", "SHOWED"), ("OPEN", "OPENED"),
        ("FOLLOW", "FOLLOWED"), ("MEASURE", "MEASURED"), ("STUDY", "STUDIED"),
        ("DESIGN", "DESIGNED"), ("CREATE", "CREATED"), ("DISCOVER", "DISCOVERED"),
        ("EXPLORE", "EXPLORED"), ("PROTECT", "PROTECTED"), ("REMEMBER", "REMEMBERED"),
        ("IMAGINE", "IMAGINED"), ("UNDERSTAND", "UNDERSTOOD"), ("WATCH", "WATCHED"),
        ("WRITE", "WROTE"), ("READ", "READ"), ("LOVE", "LOVED"), ("NEED", "NEEDED"),
        ("WANT", "WANTED"), ("USE", "USED"), ("MOVE", "MOVED"), ("FIX", "FIXED"),
        ("TEST", "TESTED"), ("PLANT", "PLANTED"), ("CARRY", "CARRIED"), ("SELL", "SOLD"),
        ("BUY", "BOUGHT"), ("TEACH", "TAUGHT"), ("LEARN", "LEARNED"), ("SOLVE", "SOLVED"),
        ("PAINT", "PAINTED"), ("LOSE", "LOST"), ("MISS", "MISSED"), ("FEED", "FED"),
        ("CLEAN", "CLEANED"), ("COUNT", "COUNTED"), ("DRAW", "DREW"), ("HELP", "HELPED"),
        ("VISIT", "VISITED"), ("KEEP", "KEPT"),
    ],
    # (base, past) pairs of intransitive verbs
    "IV": [
        ("GROW", "GREW"), ("WORK", "WORKED"), ("LISTEN", "LISTENED"), ("WAIT", "WAITED"),
        ("LAUGH", "LAUGHED"), ("TRAVEL", "TRAVELED"), ("FAIL", "FAILED"),
        ("SUCCEED", "SUCCEEDED"), ("DISAPPEAR", "DISAPPEARED"), ("ARRIVE", "ARRIVED"),
        ("SLEEP", "SLEPT"), ("SPEAK", "SPOKE"), ("THINK", "THOUGHT"), ("LIVE", "LIVED"),
        ("RUN", "RAN"), ("SWIM", "SWAM"), ("FLY", "FLEW"), ("SING", "SANG"),
        ("WALK", "WALKED"), ("BEGIN", "BEGAN"),
    ],
    "PREP": (
        "IN ON AT FROM WITH WITHOUT NEAR BEHIND UNDER ABOVE AROUND THROUGH ACROSS INSIDE "
        "BEYOND BETWEEN"
    ).split(),
    "ADV": (
        "TODAY TOGETHER AGAIN ALWAYS NEVER SOMETIMES QUICKLY SLOWLY CAREFULLY REALLY "
        "FINALLY SUDDENLY ALREADY SOON OFTEN EVERYWHERE"
    ).split(),
    "TIMEP": [
        "LAST YEAR", "LAST WEEK", "THIS MORNING", "EVERY DAY", "RIGHT NOW", "TEN YEARS AGO",
        "IN THE FUTURE", "AT NIGHT", "AFTER THAT", "FOR A LONG TIME", "THREE DAYS LATER",
    ],
    "NUM": "TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN TWENTY HUNDRED THOUSAND MILLION".split(),
    "PLURALN": (
        "PEOPLE CHILDREN STUDENTS SCIENTISTS ANIMALS PLANTS TREES BIRDS FISH CELLS STARS "
        "CARS COMPUTERS ROBOTS BOOKS IDEAS QUESTIONS STORIES FAMILIES COUNTRIES CITIES "
        "WOMEN MEN DOCTORS FARMERS ENGINEERS PATIENTS VOLUNTEERS"
    ).split(),
    "SUBJP": "WE THEY YOU I".split(),
    "OPIN": [
        "I THINK", "I BELIEVE", "WE KNOW", "IT TURNS OUT", "THE TRUTH IS", "YOU KNOW",
        "I REMEMBER", "IMAGINE", "SO", "AND", "BUT", "NOW", "OF COURSE",
    ],
    "MODAL": "CAN COULD SHOULD WILL MIGHT MUST WOULD".split(),
    "INTENS": "VERY REALLY SO QUITE TRULY".split(),
}

_TEMPLATES: List[Tuple[float, str]] = [
    (3.0, "NP PASTTV NP"),
    (2.0, "NP PASTTV NP PP"),
    (2.0, "NP PASTIV PP"),
    (1.0, "NP PASTIV ADV"),
    (2.0, "SUBJP MODAL TV NP"),
    (1.5, "SUBJP MODAL TV NP PP"),
    (1.5, "OPIN NP PASTTV NP"),
    (1.0, "OPIN SUBJP MODAL IV ADV"),
    (1.5, "NP WAS INTENS ADJ"),
    (1.0, "THIS IS NP"),
    (1.0, "THIS IS NP PP"),
    (1.0, "THERE WERE NUM PLURALN PP"),
    (1.0, "NUM PLURALN PASTTV NP TIMEP"),
    (1.0, "SUBJP HAVE TO TV NP"),
    (1.0, "SUBJP ARE GOING TO TV NP"),
    (1.0, "WHAT IF SUBJP COULD TV NP"),
    (1.0, "HOW DO SUBJP TV NP"),
    (1.0, "WHY DID NP TV NP"),
    (1.0, "NAME PASTTV NP TIMEP"),
    (1.0, "NAME AND NAME PASTIV PP"),
    (1.0, "LET ME TELL YOU ABOUT NP"),
    (1.0, "IT WAS THE ADJ NOUN OF MY LIFE"),
    (1.0, "THE PROBLEM IS THAT NP PASTIV"),
    (1.0, "PLURALN ARE ADJ PP"),
    (1.0, "TIMEP NP PASTTV NP"),
]

_FUNCTION_WORDS = (
    "WAS IS ARE WERE THERE HAVE TO GOING WHAT IF COULD HOW DO WHY DID AND LET ME TELL "
    "YOU ABOUT IT OF MY LIFE THE PROBLEM THAT THIS A"
).split()


def _noun_phrase(rng: np.random.Generator) -> List[str]:
    r = rng.random()
    if r < 0.12:
        return [str(rng.choice(_W["NAME"]))]
    if r < 0.25:
        return [str(rng.choice(_W["PLURALN"]))]
    det = str(rng.choice(_W["DET"])) if rng.random() < 0.75 else str(rng.choice(_W["POSS"]))
    words = [det]
    if rng.random() < 0.45:
        adj = str(rng.choice(_W["ADJ"]))
        if det == "A" and adj[0] in "AEIOU":
            words[0] = "AN"
        words.append(adj)
    noun = str(rng.choice(_W["NOUN"]))
    if len(words) == 1 and det == "A" and noun[0] in "AEIOU":
        words[0] = "AN"
    words.append(noun)
    return words


def _expand(symbol: str, rng: np.random.Generator) -> List[str]:
    if symbol == "NP":
        return _noun_phrase(rng)
    if symbol == "PP":
        return [str(rng.choice(_W["PREP"]))] + _noun_phrase(rng)
    if symbol == "PASTTV":
        return [_W["TV"][int(rng.integers(len(_W["TV"])))][1]]
    if symbol == "TV":
        return [_W["TV"][int(rng.integers(len(_W["TV"])))][0]]
    if symbol == "PASTIV":
        return [_W["IV"][int(rng.integers(len(_W["IV"])))][1]]
    if symbol == "IV":
        return [_W["IV"][int(rng.integers(len(_W["IV"])))][0]]
    if symbol == "NOUN":
        return [str(rng.choice(_W["NOUN"]))]
    if symbol in _W:
        return str(rng.choice(_W[symbol])).split()
    return [symbol]  # literal word


def lrs3_sentence(rng: np.random.Generator) -> List[str]:
    """One sentence of the talk-style grammar: ``MIN_WORDS..MAX_WORDS`` uppercase words."""
    weights = np.array([w for w, _ in _TEMPLATES])
    weights = weights / weights.sum()
    while True:
        template = _TEMPLATES[int(rng.choice(len(_TEMPLATES), p=weights))][1]
        words: List[str] = []
        for sym in template.split():
            words.extend(_expand(sym, rng))
        if MIN_WORDS <= len(words) <= MAX_WORDS:
            return words


def lrs3_vocabulary() -> Set[str]:
    """Every word the ``lrs3`` grammar can produce."""
    vocab: Set[str] = set(_FUNCTION_WORDS) | {"AN"}
    for key, values in _W.items():
        if key in ("TV", "IV"):
            for base, past in values:  # type: ignore[misc]
                vocab.update((base, past))
        else:
            for v in values:
                vocab.update(str(v).split())
    return vocab


# ----------------------------------------------------------------------------- grid
GRID_SLOTS: Tuple[Tuple[str, ...], ...] = (
    ("BIN", "LAY", "PLACE", "SET"),
    ("BLUE", "GREEN", "RED", "WHITE"),
    ("AT", "BY", "IN", "WITH"),
    tuple("ABCDEFGHIJKLMNOPQRSTUVXYZ"),  # GRID has no W
    ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"),
    ("AGAIN", "NOW", "PLEASE", "SOON"),
)


def grid_sentence(rng: np.random.Generator) -> List[str]:
    """One GRID-structured command, e.g. ``["BIN", "BLUE", "AT", "F", "TWO", "NOW"]``."""
    return [str(slot[int(rng.integers(len(slot)))]) for slot in GRID_SLOTS]


def grid_vocabulary() -> Set[str]:
    return {w for slot in GRID_SLOTS for w in slot}


# espeak speaks a lone letter by its name, except "a", which it reads as the article.
_LETTER_SPELLING = {"A": "eigh"}


def spoken_form(words: Sequence[str], grammar: str) -> str:
    """Text handed to the synthesiser for the transcript ``words`` (one token per word)."""
    out = []
    for w in words:
        if grammar == "grid" and len(w) == 1:
            out.append(_LETTER_SPELLING.get(w, w.lower()))
        else:
            out.append(w.lower())
    return " ".join(out)


def sample_sentence(grammar: str, rng: np.random.Generator) -> List[str]:
    if grammar == "lrs3":
        return lrs3_sentence(rng)
    if grammar == "grid":
        return grid_sentence(rng)
    raise ValueError(f"grammar must be one of {GRAMMARS}, got {grammar!r}")


def vocabulary(grammar: str) -> Set[str]:
    if grammar == "lrs3":
        return lrs3_vocabulary()
    if grammar == "grid":
        return grid_vocabulary()
    raise ValueError(f"grammar must be one of {GRAMMARS}, got {grammar!r}")
