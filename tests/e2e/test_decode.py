"""decode: the grader's ns2/eb4/ah1/mn6 runs, byte-exact stdout, plus the error contract."""
import random

import pytest

from support.checks import assert_error, assert_ok
from support.cli import run_cli

WORDS = ["apple", "orange", "banana", "pear", "grape", "pineapple", "mango", "strawberry",
         "raspberry", "blueberry"]
RNG = random.Random(20240611)


def decode(value: str):
    result = run_cli("decode", value)
    assert_ok(result)
    return result.stdout


@pytest.mark.parametrize("word", WORDS)
def test_string(word):
    assert decode(f"{len(word)}:{word}") == f'"{word}"\n'


def test_url_string_is_not_slash_escaped():
    url = "http://bittorrent-test-tracker.codecrafters.io/announce"
    assert decode(f"{len(url)}:{url}") == f'"{url}"\n'


@pytest.mark.parametrize("number", [RNG.randrange(0, 2147483647) for _ in range(3)]
                         + [0, 4294967300, -52])
def test_integer(number):
    assert decode(f"i{number}e") == f"{number}\n"


def one_of(stdout: str, compact: str) -> bool:
    """The grader accepts the compact form or json.dumps' default ', ' / ': ' spacing."""
    spaced = compact.replace(",", ", ").replace(":", ": ")
    return stdout in (compact + "\n", spaced + "\n")


LIST_CASES = [("le", "[]"), ("lli4eei5ee", "[[4],5]")]
for _word in RNG.sample(WORDS, 3):
    _n = RNG.randrange(0, 1000)
    LIST_CASES.append((f"l{len(_word)}:{_word}i{_n}ee", f'["{_word}",{_n}]'))
    LIST_CASES.append((f"lli{_n}e{len(_word)}:{_word}ee", f'[[{_n},"{_word}"]]'))


@pytest.mark.parametrize("value,compact", LIST_CASES)
def test_list(value, compact):
    out = decode(value)
    assert one_of(out, compact), out


DICT_CASES = [("de", "{}"),
              ("d10:inner_dictd4:key16:value14:key2i42e8:list_keyl5:item15:item2i3eeee",
               '{"inner_dict":{"key1":"value1","key2":42,"list_key":["item1","item2",3]}}')]
for _word in RNG.sample(WORDS, 3):
    DICT_CASES.append((f"d3:foo{len(_word)}:{_word}5:helloi52ee",
                       f'{{"foo":"{_word}","hello":52}}'))


@pytest.mark.parametrize("value,compact", DICT_CASES)
def test_dict_keeps_key_order(value, compact):
    out = decode(value)
    assert one_of(out, compact), out


def test_exact_stdout_has_nothing_else():
    result = run_cli("decode", "i7e")
    assert_ok(result)
    assert result.stdout == "7\n"


@pytest.mark.parametrize("value", [
    "i12",          # unterminated integer
    "5:abc",        # string shorter than its length
    "l4:spam",      # unterminated list
    "x",            # not bencode
    "",             # empty
    "i03e",         # leading zero (BEP 3: invalid)
    "i-0e",         # negative zero (BEP 3: invalid)
    "d3:fooe",      # key without value
    "di1e3:fooe",   # non-string key
    "i1ei2e",       # trailing data after the value
])
def test_invalid_input_is_one_error_line(value):
    assert_error(run_cli("decode", value), quiet=True)
