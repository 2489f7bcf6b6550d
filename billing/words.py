"""The amount in words of a SUNAT document (legend 1000): `SON: CIENTO DIECIOCHO CON 50/100 SOLES`.

Written here rather than taken from num2words, whose Spanish output gets the apocope wrong
before "mil" and "millones" ("veintiuno mil" instead of "veintiún mil"). The final unit keeps its
full form ("UNO", "VEINTIUNO"), as Peruvian documents print it: `SON: UNO CON 00/100 SOLES`.
"""

_UNITS = [
    "cero",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciséis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidós",
    "veintitrés",
    "veinticuatro",
    "veinticinco",
    "veintiséis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
]
_TENS = {3: "treinta", 4: "cuarenta", 5: "cincuenta", 6: "sesenta", 7: "setenta", 8: "ochenta", 9: "noventa"}
_HUNDREDS = {
    1: "ciento",
    2: "doscientos",
    3: "trescientos",
    4: "cuatrocientos",
    5: "quinientos",
    6: "seiscientos",
    7: "setecientos",
    8: "ochocientos",
    9: "novecientos",
}
CURRENCY_WORDS = {"PEN": "SOLES", "USD": "DÓLARES AMERICANOS"}


def _below_thousand(number: int, *, apocope: bool) -> str:
    """0 < number < 1000. `apocope`: a final "uno" becomes "un" (before "mil"/"millones")."""
    hundreds, rest = divmod(number, 100)
    words = []
    if hundreds:
        words.append("cien" if hundreds == 1 and rest == 0 else _HUNDREDS[hundreds])
    if rest:
        if rest < 30:
            word = _UNITS[rest]
        else:
            tens, unit = divmod(rest, 10)
            word = _TENS[tens] + (f" y {_UNITS[unit]}" if unit else "")
        if apocope and word.endswith("uno"):
            word = word[:-3] + ("ún" if word == "veintiuno" else "un")
        words.append(word)
    return " ".join(words)


def _below_million(number: int, *, apocope: bool) -> str:
    thousands, rest = divmod(number, 1000)
    words = []
    if thousands:
        words.append("mil" if thousands == 1 else f"{_below_thousand(thousands, apocope=True)} mil")
    if rest:
        words.append(_below_thousand(rest, apocope=apocope))
    return " ".join(words)


def integer_in_words(number: int) -> str:
    """A non-negative integer below 10**12 in Spanish words, lower case."""
    if not 0 <= number < 10**12:
        raise ValueError("out of range")
    if number == 0:
        return "cero"
    millions, rest = divmod(number, 10**6)
    words = []
    if millions:
        words.append("un millón" if millions == 1 else f"{_below_million(millions, apocope=True)} millones")
    if rest:
        words.append(_below_million(rest, apocope=False))
    return " ".join(words)


def amount_in_words(minor_units: int, currency: str) -> str:
    """11850, "PEN" -> "SON: CIENTO DIECIOCHO CON 50/100 SOLES"."""
    units, cents = divmod(minor_units, 100)
    return f"SON: {integer_in_words(units).upper()} CON {cents:02d}/100 {CURRENCY_WORDS[currency]}"
