"""The words, names and numbers the synthetic tasks draw from, apart from the generators that
use them, so that the vocabulary can be checked (distinct words, no colour among them) and grown
without reading task logic. Changing any list changes every prompt drawn from it.
"""

from __future__ import annotations

WORDS = (
    "apple table river chair window garden pencil bottle candle forest "
    "mountain bridge castle rabbit turtle kitten puppy tiger horse camel "
    "basket button carpet pillow blanket mirror ladder hammer bucket shovel "
    "doctor farmer sailor singer pilot baker dancer driver teacher student "
    "island desert valley canyon meadow ocean harbor planet comet rocket "
    "bread butter cheese pepper garlic onion potato tomato carrot noodle "
    "jacket sweater glove scarf boot sandal helmet wallet pocket zipper "
    "guitar violin piano drum flute trumpet banjo cello harp whistle "
    "cloud storm thunder rain snow winter summer autumn spring breeze "
    "paper letter stamp ticket poster magnet sponge towel soap brush "
    "dog cat cow pig fox owl bee ant bat hen "
    "cup pan pot jar box bag hat map pen key "
    "book door lamp desk sofa shelf clock phone radio camera "
    "train truck wagon bicycle canoe yacht engine tunnel station airport "
    "kettle spoon fork knife plate bowl teapot napkin oven fridge "
    "market school church museum library theater stadium hospital factory office "
    "shadow sunset signal sketch puzzle riddle marble pebble feather saddle "
    "banana balloon bubble pickle cookie parrot giraffe hippo llama mammal"
).split()
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white")
NAMES = (
    "Maria Omar Lena Tom Priya Kenji Sofia Lucas Amara Diego Hana Ivan Zara Noah Mei "
    "Felix Nadia Oscar Ruth Sam Tariq Uma Victor Wendy Yusuf Chloe Emil Grace Jonas Leila"
).split()
CITIES = (
    "Oslo Lima Cairo Paris Tokyo Delhi Rome Berlin Madrid Nairobi "
    "Seoul Sydney Toronto Dublin Vienna Lagos Quito Hanoi Prague Lisbon"
).split()
PRODUCTS = (
    "lamp",
    "chair",
    "kettle",
    "jacket",
    "guitar",
    "bicycle",
    "camera",
    "backpack",
    "clock",
    "radio",
    "sofa",
    "helmet",
    "tent",
    "blender",
    "printer",
)
JOBS = (
    "teacher",
    "nurse",
    "chef",
    "pilot",
    "farmer",
    "painter",
    "engineer",
    "baker",
    "lawyer",
    "dentist",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
ACTIONS = (
    "painted the fence",
    "baked a cake",
    "fixed the bike",
    "wrote a letter",
    "planted a tree",
    "washed the car",
    "read a book",
    "cleaned the kitchen",
    "sold a lamp",
    "found a key",
)
COUNTABLE_ITEMS = (
    "apples",
    "marbles",
    "stickers",
    "cookies",
    "pencils",
    "stamps",
    "shells",
    "cards",
    "books",
    "coins",
)
GAINS = ("buys {n} more", "finds {n} more", "gets {n} more from a friend")
LOSSES = ("gives away {n}", "loses {n}", "sells {n}")
COMPARISONS = (  # comparative, superlative of the most, superlative of the least
    ("taller", "tallest", "shortest"),
    ("older", "oldest", "youngest"),
    ("faster", "fastest", "slowest"),
)
UNIT_CONVERSIONS = (  # from unit, to unit, factor
    ("kilometers", "meters", 1000),
    ("kilograms", "grams", 1000),
    ("meters", "centimeters", 100),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("days", "hours", 24),
)
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
LONG_WORD_LETTERS = 5  # a word with more letters is long (cls_word_length)


def _sieve_primes(limit: int) -> list[bool]:
    """is_prime[n] for n < limit, by the sieve of Eratosthenes."""
    is_prime = [n >= 2 for n in range(limit)]
    for n in range(2, int(limit**0.5) + 1):
        if is_prime[n]:
            is_prime[n * n :: n] = [False] * len(range(n * n, limit, n))
    return is_prime


_IS_PRIME = _sieve_primes(1000)
PRIMES = tuple(n for n in range(2, 1000) if _IS_PRIME[n])
COMPOSITES = tuple(n for n in range(4, 1000) if not _IS_PRIME[n])
LONG_WORDS = tuple(w for w in WORDS if len(w) > LONG_WORD_LETTERS)
SHORT_WORDS = tuple(w for w in WORDS if len(w) <= LONG_WORD_LETTERS)


def number_to_words(n: int) -> str:
    """English words for 0 <= n <= 999, e.g. 342 -> 'three hundred forty-two'."""
    hundreds, rest = divmod(n, 100)
    parts = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        parts.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest or not hundreds:
        parts.append(_ONES[rest])
    return " ".join(parts)
