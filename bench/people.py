"""Realistic Russian client data (Faker ru_RU), fast enough to make 100,000 clients in a few seconds.

Faker is called once to fill small pools of names and companies; clients are then combined from the
pools with a seeded ``random.Random``, which is ~50 times faster than a Faker call per field and
keeps runs reproducible. Phones and emails are made unique by construction, because the clients
service refuses a second client with the same contact in a branch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faker import Faker

SOURCES = ("web_form", "yandex", "google", "avito", "telegram", "referral", "cold_call", "exhibition", "2gis", "instagram")
TAGS = ("vip", "опт", "розница", "постоянный", "новый", "b2b", "b2c", "москва", "регион", "рассрочка", "тендер")
EMAIL_DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "rambler.ru", "bk.ru", "list.ru", "inbox.ru")
# Mobile operator codes 900–989 (930 has unassigned ranges, so phonenumbers rejects some of its numbers).
# 999 is kept out of the seed: clients created during the load test take their numbers from it.
SEED_OPERATOR_CODES = tuple(code for code in range(900, 990) if code != 930)
LOAD_OPERATOR_CODE = 999

_TRANSLIT = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u", "f",
     "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"],
))


def translit(text: str) -> str:
    return "".join(_TRANSLIT.get(ch, ch) for ch in text.lower() if ch.isalnum() or ch in _TRANSLIT)


@dataclass(frozen=True)
class Person:
    kind: str
    name: str
    surname: str  # the part a user types to find a person (the company's name for a company)
    source: str
    tags: list[str]


class People:
    """Pools of Faker ru_RU names, combined at random into clients."""

    def __init__(self, seed: int = 2026, pool: int = 3000):
        fake = Faker("ru_RU")
        fake.seed_instance(seed)
        self.rng = random.Random(seed)
        self.male = [(fake.last_name_male(), fake.first_name_male(), fake.middle_name_male()) for _ in range(pool)]
        self.female = [(fake.last_name_female(), fake.first_name_female(), fake.middle_name_female()) for _ in range(pool)]
        self.companies = list({fake.company() for _ in range(pool)})

    def person(self) -> Person:
        rng = self.rng
        tags = rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2, 3)))
        source = rng.choice(SOURCES)
        if rng.random() < 0.2:
            company = rng.choice(self.companies)
            # «Рога и копыта» is what people type, not the legal form in front of it
            core = company.split("«", 1)[-1].rstrip("»")
            return Person("company", company, core, source, tags)
        last, first, middle = rng.choice(self.male if rng.random() < 0.5 else self.female)
        name = f"{last} {first} {middle}" if rng.random() < 0.6 else f"{last} {first}"
        return Person("person", name, last, source, tags)

    def email(self, person: Person, unique: int | str) -> str:
        local = translit(person.surname.split()[0])[:20] or "client"
        return f"{local}.{unique}@{self.rng.choice(EMAIL_DOMAINS)}"


def seed_phone(index: int) -> str:
    """The ``index``-th seeded phone in E.164, distinct for every index below 89 × 10^7."""
    code = SEED_OPERATOR_CODES[index % len(SEED_OPERATOR_CODES)]
    # a multiplicative permutation of the 7 subscriber digits, so neighbours do not look sequential
    subscriber = (index // len(SEED_OPERATOR_CODES) * 7_654_321 + 1_234_567) % 10**7
    return f"+7{code}{subscriber:07d}"


def load_phone(number: int) -> str:
    """A phone for a client created during the load test, written the way people type it."""
    digits = f"{number % 10**7:07d}"
    return f"+7 {LOAD_OPERATOR_CODE} {digits[:3]}-{digits[3:5]}-{digits[5:]}"
