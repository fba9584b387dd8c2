"""Deterministic generator of large customer CSV files for import tests.

The output mimics Datablist's ``customers-2000000.csv`` plus a long free-text
"About Customer" column, so 2,000,000 rows make a file of ~2.4 GB.  It is built
for speed because a pure-Python row loop calling ``random`` per field would take
half an hour for such a file: every value (names, companies, phones, text
paragraphs, Customer Id fragments) is drawn once into small pools, already
CSV-escaped, and each row only indexes those pools with bits taken from one
bulk ``randbytes`` call per block of rows.
"""
from __future__ import annotations

import datetime
import os
import pathlib
import sys
import unicodedata
from array import array
from collections import namedtuple
from random import Random
from typing import Callable

HEADER = ("Index,Customer Id,First Name,Last Name,Company,City,Country,"
          "Phone 1,Phone 2,Email,Subscription Date,Website,About Customer\n")

FIRST_NAMES = tuple("""José Zoë Łukasz Søren Björn François Chloé Renée Jürgen Ana-María
 Ayşe Ngọc 伟 娜 Siobhán Mikael Dolores Yvonne James Mary Robert Patricia John Jennifer
 Michael Linda David Elizabeth William Barbara Richard Susan Joseph Jessica Thomas Sarah
 Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra Mark Ashley
 Donald Kimberly Steven Emily Paul Donna Andrew Michelle Joshua Carol Kenneth Amanda Kevin
 Jonathan Anna Olivia Rachel Gregory Victoria Aaron Kelly Vanessa Tyler Heather""".split())
LAST_NAMES = tuple("""Müller Ørsted 李 王 García Kowalczyk Nuñez Dvořák O'Brien Öztürk Nguyễn
 Ångström Lefèvre Šimić Smith Johnson Williams Brown Jones Miller Davis Rodriguez Martinez
 Hernandez Lopez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White
 Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams Baker
 Rasmussen Black Ferrell Zuniga Stephenson Reyes Mcconnell Hart Bryant Mccarty Huber""".split())
CITIES = tuple("""São Paulo|Zürich|Kraków|Reykjavík|Malmö|Düsseldorf|Québec|東京|Москва|
 Chicago|Houston|Phoenix|Lyon|Porto|Dublin|Nairobi|Lima|Osaka|Denver""".replace(
    "\n ", "").split("|"))
CITY_FORMS = ("Lake {}", "Port {}", "East {}", "New {}", "West {}", "{}ville", "{}berg",
              "{}ton", "North {}", "South {}", "{}mouth", "{} Springs")
COUNTRIES = tuple("""Korea, Republic of|Congo, Democratic Republic of the|Côte d'Ivoire|
 Curaçao|Åland Islands|Türkiye|São Tomé and Príncipe|Bonaire, Sint Eustatius and Saba|Chile|
 Djibouti|Antigua and Barbuda|Dominican Republic|Slovakia|Pitcairn Islands|Bulgaria|Cyprus|
 Timor-Leste|Guernsey|Vietnam|Togo|Sri Lanka|Brazil|Germany|France|Poland|Denmark|Norway|
 Japan|China|Mexico|Canada|United States of America|United Kingdom|Kenya|Peru|Iceland|
 Sweden""".replace("\n ", "").split("|"))
COMPANY_FORMS = ("{0}, {1} and {2}", "{0}-{1}", "{0} Ltd", "{0} PLC", "{0} Inc",
                 "{0} LLC", "{0} Group", "{0} and Sons", "{0}, {1} and {2}", "{0}-{1}")
PHONE_FORMS = ("+1-{0}-{1}-{2}", "({0}){1}-{2}x{3}", "001-{0}-{1}-{2}", "{0}.{1}.{2}",
               "{0}-{1}-{2}", "+1-{0}-{1}-{2}x{3}", "001-{0}-{1}-{2}x{3}", "{0}.{1}.{2}x{3}")
EMAIL_FORMS = ("{0}{1}@{3}", "{0}.{1}@{3}", "{0[0]}{1}{2}@{3}", "{1}{0}{2}@{3}")
FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "web.de", "gmx.net")
TLDS = ("com", "net", "org", "info", "biz", "io")
WORDS = tuple("""customer account order invoice delivery support ticket renewal contract
 request team office manager budget quarter report prefers email phone call meeting
 discount premium plan upgrade downgrade shipping warehouse product catalogue feedback
 satisfied unhappy loyal new long-term regional partner reseller payment overdue prompt
 always never usually recently asked about the a an and or but with for from to of in on
 at by after before during while their our its this that which very quite rather café
 naïve façade résumé Zürich crème brûlée déjà vu piñata jalapeño smörgåsbord fiancée
 headquarters logistics integration onboarding compliance procurement subscription""".split())
# Exact-length ASCII words let a paragraph hit its byte target exactly.
FILLERS = ("", "a", "so", "too", "also", "again", "indeed", "overall", "recently",
           "typically", "ultimately", "nonetheless", "accordingly", "additionally")
POOL_BYTES = 8_000_000   # cap on memory held by the About paragraph pools
BLOCK_BYTES = 16_000_000  # cap on one in-memory block of rows
_ID_MASK = (1 << 60) - 1  # Customer Id = 15 hex digits = 60 bits


# head: first half of About (ends with a space unless empty); tail: the rest, some with
# commas (tail_quoted); tricky: pre-escaped tails with a quoted phrase, put after a newline.
_Pools = namedtuple("_Pools", "first first_ascii last last_ascii company website location "
                    "phone domain dates id_chunks id_keys head tail tail_quoted tricky")


def _csv(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


_FOLD = str.maketrans({"ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "ß": "ss", "李": "li",
                       "王": "wang", "伟": "wei", "娜": "na"})


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.translate(_FOLD))
    return "".join(c for c in folded.lower() if c.isascii() and c.isalnum()) or "x"


def _filler(n: int) -> str:
    words = []
    while n > len(FILLERS) - 1:
        word = FILLERS[min(len(FILLERS) - 1, n - 2)]
        words.append(word)
        n -= len(word) + 1
    return " ".join(words + [FILLERS[n]])


def _text(rng: Random, size: int, commas: bool, opening: str = "") -> str:
    """Sentences of exactly ``size`` UTF-8 bytes (``opening`` included)."""
    if size < 4:
        return "Ok."[:size]
    parts, used = [opening] if opening else [], len(opening.encode())
    while used <= size:
        words = rng.choices(WORDS, k=rng.randint(4, 14))
        if commas and rng.random() < 0.5:
            words[rng.randrange(len(words) - 1)] += ","
        words[0] = words[0].capitalize()
        parts.append(" ".join(words) + ".")
        used += len(parts[-1].encode()) + 1
    raw = " ".join(parts).encode()
    cut = raw.rfind(b" ", 0, size - 2)
    if cut < 0:
        return _filler(size - 1) + "."
    fill = _filler(size - cut - 2)
    if raw[cut - 1:cut] == b".":  # the filler starts a new sentence
        fill = fill.capitalize()
    return raw[:cut].decode() + " " + fill + "."


def _about_pools(rng: Random, about_bytes: int):
    """Pools of About texts; each row joins a head and a tail, so rows rarely repeat."""
    if about_bytes == 0:
        return ("",), ("",), (False,), ()
    count = 2048
    while count > 64 and count * about_bytes > POOL_BYTES:
        count //= 2

    def sizes(target):  # +-10% jitter around the target, mean on target
        return [max(0, round(target * rng.uniform(0.9, 1.1))) for _ in range(count)]

    split = about_bytes >= 64  # shorter texts are not worth splitting in two
    head_size = (about_bytes - 1) // 2 if split else 0
    tail_size = about_bytes - 1 - head_size if split else about_bytes
    heads = tuple(_text(rng, n, False) + " " for n in sizes(head_size)) if split else ("",)
    tails = tuple(_text(rng, n, i % 4 == 0) for i, n in enumerate(sizes(tail_size)))
    tricky: tuple[str, ...] = ()
    if about_bytes >= 200:  # the quoted opening must survive the cut to size
        tricky = tuple(
            _text(rng, n, True, f'Note: "{" ".join(rng.choices(WORDS, k=3))}" said.')
            .replace('"', '""') for n in sizes(tail_size)[:64])
    return heads, tails, tuple("," in t for t in tails), tricky


def _pools(rng: Random, about_bytes: int) -> _Pools:
    first = [rng.choice(FIRST_NAMES) for _ in range(256)]
    last = [rng.choice(LAST_NAMES) for _ in range(512)]
    companies, websites = [], []
    for _ in range(4096):
        form, names = rng.choice(COMPANY_FORMS), rng.choices(LAST_NAMES, k=3)
        slug = _ascii(names[0]) + ("-" + _ascii(names[1]) if "{1}" in form else "")
        companies.append(form.format(*names))
        websites.append(f"{rng.choice(('http', 'https'))}://{rng.choice(('www.', ''))}"
                        f"{slug}.{rng.choice(TLDS)}/")
    cities = [rng.choice(CITIES) if rng.random() < 0.2 else
              rng.choice(CITY_FORMS).format(rng.choice(FIRST_NAMES)) for _ in range(1024)]
    locations = [f"{_csv(city)},{_csv(rng.choice(COUNTRIES))}" for city in cities]
    phones = [rng.choice(PHONE_FORMS).format(rng.randint(201, 989), rng.randint(200, 999),
              f"{rng.randrange(10000):04d}", rng.randint(1, 99999)) for _ in range(4096)]
    domains = list(FREE_MAIL) + [f"{_ascii(rng.choice(LAST_NAMES))}.{rng.choice(TLDS)}"
                                 for _ in range(64 - len(FREE_MAIL))]
    day0 = datetime.date(2020, 1, 1)
    days = (datetime.date(2022, 12, 31) - day0).days + 1
    dates = [(day0 + datetime.timedelta(d)).isoformat() for d in range(days)]
    # Customer Id = five 3-hex-digit chunks; each chunk value has one fixed mixed-case
    # spelling per position, so distinct 60-bit numbers give distinct Ids.
    id_chunks = tuple(tuple("".join(c.upper() if rng.getrandbits(1) else c
                                    for c in f"{v:03x}") for v in range(4096))
                      for _ in range(5))
    keys = (rng.getrandbits(60), rng.getrandbits(60))
    head, tail, tail_quoted, tricky = _about_pools(rng, about_bytes)
    return _Pools(tuple(map(_csv, first)), tuple(map(_ascii, first)),
                  tuple(map(_csv, last)), tuple(map(_ascii, last)),
                  tuple(map(_csv, companies)), tuple(websites), tuple(locations),
                  tuple(phones), tuple(domains), tuple(dates), id_chunks, keys,
                  head, tail, tail_quoted, tricky)


def _block(p: _Pools, start: int, stop: int, noise: bytes) -> str:
    """Rows ``start``..``stop - 1`` as CSV text; ``noise`` holds 24 random bytes a row."""
    (first, first_ascii, last, last_ascii, company, website, location, phone, domain,
     dates, (c0, c1, c2, c3, c4), (k1, k2), head, tail, tail_quoted, tricky) = p
    ndates, head_mask, tail_mask = len(dates), len(head) - 1, len(tail) - 1
    words = array("Q", noise)
    if sys.byteorder == "big":  # same bytes on every platform
        words.byteswap()
    it = iter(words)
    lines = []
    for idx, w1, w2, w3 in zip(range(start, stop), it, it, it):
        # Bijection on 60 bits (xor key, odd multiply, xor-shift), so Ids never collide.
        x = ((idx ^ k1) * 0x9E3779B97F4A7C15) & _ID_MASK
        x ^= x >> 29
        x = (x * 0xBF58476D1CE4E5B9 + k2) & _ID_MASK
        x ^= x >> 32
        f, l, c = w1 & 255, w1 >> 8 & 511, w1 >> 17 & 4095
        h, t = head[w2 >> 16 & head_mask], w2 >> 32 & tail_mask
        if tricky and (w3 >> 15 & 1023) < 20:  # ~1 row in 51
            about = f'"{h[:-1]}\n{tricky[w3 >> 25 & 63]}"'
        elif tail_quoted[t]:
            about = f'"{h}{tail[t]}"'
        else:
            about = h + tail[t]
        email = EMAIL_FORMS[w3 & 3].format(first_ascii[f], last_ascii[l], w3 >> 2 & 127,
                                           domain[w3 >> 9 & 63])
        lines.append(
            f"{idx},{c0[x >> 48]}{c1[x >> 36 & 4095]}{c2[x >> 24 & 4095]}"
            f"{c3[x >> 12 & 4095]}{c4[x & 4095]},{first[f]},{last[l]},{company[c]},"
            f"{location[w1 >> 29 & 1023]},{phone[w1 >> 39 & 4095]},{phone[w1 >> 51 & 4095]},"
            f"{email},{dates[(w2 & 0xFFFF) * ndates >> 16]},{website[c]},{about}\n")
    return "".join(lines)


def generate(out: pathlib.Path, rows: int, *, seed: int = 1, about_bytes: int = 1000,
             progress: Callable[[int], None] | None = None) -> int:
    """Write ``rows`` customer rows to ``out`` atomically; return the bytes written.

    The same (rows, seed, about_bytes) always gives the same bytes.  ``progress`` is
    called after each block with the number of rows written so far.
    """
    if rows < 0 or about_bytes < 0:
        raise ValueError("rows and about_bytes must be >= 0")
    out = pathlib.Path(out)
    rng = Random(seed)
    pools = _pools(rng, about_bytes)
    block = max(1, min(10_000, BLOCK_BYTES // (about_bytes + 300)))
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(out.suffix + ".part")
    try:
        with open(part, "wb", buffering=1 << 20) as fh:
            written = fh.write(HEADER.encode())
            for start in range(1, rows + 1, block):
                stop = min(start + block, rows + 1)
                noise = rng.randbytes(24 * (stop - start))
                written += fh.write(_block(pools, start, stop, noise).encode())
                if progress is not None:
                    progress(stop - 1)
        os.replace(part, out)
    except BaseException:  # also on KeyboardInterrupt: never leave a stale .part
        part.unlink(missing_ok=True)
        raise
    return written
