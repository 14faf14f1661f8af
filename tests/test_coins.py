"""The coin registry: the packaged default file, custom files, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinharvest.coins import BUILTIN_SOURCE_NAMES, default_coins_path, load_coins
from coinharvest.errors import ConfigError
from coinharvest.models import DEFAULT_PRIORITY, Coin

SEED_ORDER = ["BTC", "ETH", "DASH", "DGB", "XMR", "RVN", "XCH", "XEC", "XNO", "NEAR", "ICP"]

#: symbol → (name, ids at each source that serves it)
SEED_COINS: dict[str, tuple[str, dict[str, str]]] = {
    "BTC": ("Bitcoin", {"coingecko": "bitcoin", "3xpl": "bitcoin", "blockchair": "bitcoin"}),
    "ETH": ("Ethereum", {"coingecko": "ethereum", "3xpl": "ethereum", "blockchair": "ethereum"}),
    "DASH": ("Dash", {"coingecko": "dash", "3xpl": "dash", "blockchair": "dash"}),
    "DGB": ("DigiByte", {"coingecko": "digibyte", "3xpl": "digibyte"}),
    "XMR": ("Monero", {"coingecko": "monero", "3xpl": "monero", "blockchair": "monero"}),
    "RVN": ("Ravencoin", {"coingecko": "ravencoin"}),
    "XCH": ("Chia", {"coingecko": "chia"}),
    "XEC": ("eCash", {"coingecko": "ecash", "3xpl": "ecash", "blockchair": "ecash"}),
    "XNO": ("Nano", {"coingecko": "nano", "nano": "nano"}),
    "NEAR": ("NEAR Protocol", {"coingecko": "near", "nearblocks": "near"}),
    "ICP": ("Internet Computer", {"coingecko": "internet-computer"}),
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "coins.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the packaged default -------------------------------------------------------------------


def test_default_file_is_in_the_package() -> None:
    path = default_coins_path()
    assert path.is_file()
    assert path.parent.name == "data"
    assert "[[coin]]" in path.read_text(encoding="utf-8").split("\n\n")[0]  # documented on top


def test_default_file_has_the_seeds_11_coins_in_seed_order() -> None:
    coins = load_coins()
    assert [coin.symbol for coin in coins] == SEED_ORDER
    assert load_coins(default_coins_path()) == coins


@pytest.mark.parametrize("symbol", SEED_ORDER)
def test_default_coin_names_and_ids(symbol: str) -> None:
    coin = {c.symbol: c for c in load_coins()}[symbol]
    name, ids = SEED_COINS[symbol]
    assert coin.name == name
    assert dict(coin.ids) == ids
    assert next(iter(coin.ids)) == "coingecko"


def test_default_priorities() -> None:
    priorities = {coin.symbol: coin.priority for coin in load_coins()}
    assert priorities["BTC"] == priorities["ETH"] == 1
    assert all(p > 1 for symbol, p in priorities.items() if symbol not in {"BTC", "ETH"})


def test_default_chains_fall_back_from_3xpl_to_blockchair() -> None:
    for coin in load_coins():
        on_chain = [s for s in ("3xpl", "blockchair") if s in coin.ids]
        other = [(s,) for s in coin.ids if s not in on_chain]
        expected = [tuple(on_chain)] if on_chain else []
        assert sorted(coin.chains) == sorted([*other, *expected]), coin.symbol


def test_default_digibyte_is_not_on_blockchair() -> None:
    dgb = {c.symbol: c for c in load_coins()}["DGB"]
    assert dgb.chains == (("coingecko",), ("3xpl",))


# --- custom files ----------------------------------------------------------------------------


def test_custom_file_order_priority_and_enabled(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[coin]]
symbol = "AAA"
name = "A"
ids = { coingecko = "a" }

[[coin]]
symbol = "BBB"
name = "B"
priority = 2
ids = { coingecko = "b" }

[[coin]]
symbol = "OFF"
name = "Off"
priority = 1
enabled = false
ids = { coingecko = "off" }

[[coin]]
symbol = "CCC"
name = "C"
priority = 2
enabled = true
ids = { coingecko = "c" }
""",
    )
    coins = load_coins(path)
    assert [(c.symbol, c.priority) for c in coins] == [
        ("BBB", 2),
        ("CCC", 2),
        ("AAA", DEFAULT_PRIORITY),
    ]


def test_chains_follow_ids_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[coin]]
symbol = "DASH"
name = "Dash"
ids = { coingecko = "dash", 3xpl = "dash", blockchair = "dash" }
fallbacks = [["blockchair", "3xpl"]]
""",
    )
    [coin] = load_coins(path)
    assert coin == Coin(
        symbol="DASH",
        name="Dash",
        ids={"coingecko": "dash", "3xpl": "dash", "blockchair": "dash"},
        chains=(("coingecko",), ("blockchair", "3xpl")),
        priority=DEFAULT_PRIORITY,
    )


def test_ids_in_a_sub_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[coin]]\nsymbol = "NEAR"\nname = "NEAR"\n[coin.ids]\ncoingecko = "near"\n'
        'nearblocks = "near"\n',
    )
    [coin] = load_coins(path)
    assert coin.chains == (("coingecko",), ("nearblocks",))


def test_known_sources_can_be_extended(tmp_path: Path) -> None:
    path = write(tmp_path, '[[coin]]\nsymbol = "X"\nname = "X"\nids = { simulated = "x" }\n')
    with pytest.raises(ConfigError, match="unknown source 'simulated'"):
        load_coins(path)
    [coin] = load_coins(path, known_sources=(*BUILTIN_SOURCE_NAMES, "simulated"))
    assert coin.ids == {"simulated": "x"}


# --- errors: one line naming the file, the coin's line and the coin --------------------------

SYMBOL_RULE = "must be 1-32 characters of A-Z, a-z, 0-9, '.', '-', '_'"
NAME_RULE = "must be 1-128 printable characters without '<' or '>'"
ID_RULE = "must be 1-128 printable characters without spaces"
GOOD = '[[coin]]\nsymbol = "BTC"\nname = "Bitcoin"\nids = { coingecko = "bitcoin" }\n\n'

BAD_COINS = [
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "BTC"\nname = "Again"\nids = { coingecko = "bitcoin" }\n',
        6,
        "coin 'BTC': duplicate symbol (first at line 1)",
        id="duplicate",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "btc"\nname = "Again"\nids = { coingecko = "bitcoin" }\n',
        6,
        "coin 'btc': duplicate symbol (first at line 1)",
        id="duplicate-other-case",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = { coinbase = "eth" }\n',
        6,
        "coin 'ETH': unknown source 'coinbase' "
        "(known: 3xpl, blockchair, coingecko, nano, nearblocks)",
        id="unknown-source",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = {}\n',
        6,
        "coin 'ETH': has no source",
        id="empty-ids",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\n',
        6,
        "coin 'ETH': has no source",
        id="no-ids",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = { coingecko = "" }\n',
        6,
        "coin 'ETH': id at 'coingecko' must be a non-empty string",
        id="empty-id",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = { coingecko = "ethereum" }\n'
        'fallbacks = [["coingecko", "blockchair"]]\n',
        6,
        "coin 'ETH': fallback source 'blockchair' is not in its ids (coingecko)",
        id="fallback-not-in-ids",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\n'
        'ids = { 3xpl = "ethereum", blockchair = "ethereum" }\n'
        'fallbacks = [["3xpl", "blockchair"], ["blockchair"]]\n',
        6,
        "coin 'ETH': fallback source 'blockchair' is listed twice",
        id="fallback-twice",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = { 3xpl = "e" }\nfallbacks = [[]]\n',
        6,
        "coin 'ETH': 'fallbacks' has an empty chain",
        id="fallback-empty-chain",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = { 3xpl = "e" }\n'
        'fallbacks = ["3xpl"]\n',
        6,
        "coin 'ETH': 'fallbacks' must be a list of lists of sources",
        id="fallback-flat",
    ),
    pytest.param(
        GOOD + '[[coin]]\nname = "Ether"\nids = { coingecko = "ethereum" }\n',
        6,
        "coin #2: missing 'symbol'",
        id="missing-symbol",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nids = { coingecko = "ethereum" }\n',
        6,
        "coin 'ETH': missing 'name'",
        id="missing-name",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = 5\nname = "Ether"\nids = { coingecko = "ethereum" }\n',
        6,
        "coin #2: 'symbol' must be a non-empty string, not 5",
        id="symbol-not-a-string",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\npriority = "high"\n'
        'ids = { coingecko = "ethereum" }\n',
        6,
        "coin 'ETH': 'priority' must be an integer (lower = collected first), not 'high'",
        id="priority-string",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\npriority = 1.5\n'
        'ids = { coingecko = "ethereum" }\n',
        6,
        "coin 'ETH': 'priority' must be an integer",
        id="priority-float",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\npriority = true\n'
        'ids = { coingecko = "ethereum" }\n',
        6,
        "coin 'ETH': 'priority' must be an integer",
        id="priority-bool",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nenabled = "yes"\n'
        'ids = { coingecko = "ethereum" }\n',
        6,
        "coin 'ETH': 'enabled' must be true or false, not 'yes'",
        id="enabled-string",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\npriorty = 1\n'
        'ids = { coingecko = "ethereum" }\n',
        6,
        "coin 'ETH': unknown key 'priorty'",
        id="unknown-key",
    ),
    pytest.param(
        "# leading comment\n\n  [[ coin ]]  # indented header\n"
        'symbol = "ETH"\nname = "Ether"\nids = { coinbase = "eth" }\n',
        3,
        "coin 'ETH': unknown source 'coinbase'",
        id="header-with-spaces",
    ),
    # Issue 12, item 9: symbols, names and ids are bounded and plain (one line, no HTML).
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "<b>"\nname = "Bold"\nids = { coingecko = "b" }\n',
        6,
        f"coin #2: symbol '<b>' is invalid: {SYMBOL_RULE}",
        id="symbol-html",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH\\nBTC"\nname = "Ether"\nids = { coingecko = "e" }\n',
        6,
        f"coin #2: symbol 'ETH\\nBTC' is invalid: {SYMBOL_RULE}",
        id="symbol-newline",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH\\n"\nname = "Ether"\nids = { coingecko = "e" }\n',
        6,
        f"coin #2: symbol 'ETH\\n' is invalid: {SYMBOL_RULE}",
        id="symbol-trailing-newline",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ET\\u0007H"\nname = "Ether"\nids = { coingecko = "e" }\n',
        6,
        f"coin #2: symbol 'ET\\x07H' is invalid: {SYMBOL_RULE}",
        id="symbol-control-character",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ET H"\nname = "Ether"\nids = { coingecko = "e" }\n',
        6,
        f"coin #2: symbol 'ET H' is invalid: {SYMBOL_RULE}",
        id="symbol-space",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ÉTH"\nname = "Ether"\nids = { coingecko = "e" }\n',
        6,
        f"coin #2: symbol 'ÉTH' is invalid: {SYMBOL_RULE}",
        id="symbol-non-ascii",
    ),
    pytest.param(
        GOOD + f'[[coin]]\nsymbol = "{"A" * 33}"\nname = "Long"\nids = {{ coingecko = "l" }}\n',
        6,
        f"coin #2: symbol '{'A' * 33}' is invalid: {SYMBOL_RULE}",
        id="symbol-33-characters",
    ),
    pytest.param(
        GOOD + f'[[coin]]\nsymbol = "{"A" * 10_000}"\nname = "Huge"\nids = {{ coingecko = "h" }}\n',
        6,
        f"coin #2: symbol '{'A' * 40}'… (10000 characters) is invalid: {SYMBOL_RULE}",
        id="symbol-10000-characters",
    ),
    pytest.param(
        GOOD + f'[[coin]]\nsymbol = "ETH"\nname = "{"n" * 129}"\nids = {{ coingecko = "e" }}\n',
        6,
        f"coin 'ETH': name '{'n' * 40}'… (129 characters) is invalid: {NAME_RULE}",
        id="name-129-characters",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "<script>x</script>"\nids = { coingecko = "e" }\n',
        6,
        f"coin 'ETH': name '<script>x</script>' is invalid: {NAME_RULE}",
        id="name-html",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether\\r\\nX"\nids = { coingecko = "e" }\n',
        6,
        f"coin 'ETH': name 'Ether\\r\\nX' is invalid: {NAME_RULE}",
        id="name-newline",
    ),
    pytest.param(
        GOOD + f'[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = {{ coingecko = "{"e" * 129}" }}\n',
        6,
        f"coin 'ETH': id '{'e' * 40}'… (129 characters) at 'coingecko' is invalid: {ID_RULE}",
        id="id-129-characters",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = { coingecko = "eth er" }\n',
        6,
        f"coin 'ETH': id 'eth er' at 'coingecko' is invalid: {ID_RULE}",
        id="id-space",
    ),
    pytest.param(
        GOOD + '[[coin]]\nsymbol = "ETH"\nname = "Ether"\nids = { coingecko = "eth\\n" }\n',
        6,
        f"coin 'ETH': id 'eth\\n' at 'coingecko' is invalid: {ID_RULE}",
        id="id-newline",
    ),
]


@pytest.mark.parametrize(("text", "line", "expected"), BAD_COINS)
def test_bad_coin_names_file_line_and_coin(
    tmp_path: Path, text: str, line: int, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_coins(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path} line {line}: {expected}")


def test_a_huge_symbol_is_one_short_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, f'[[coin]]\nsymbol = "{"<" * 10_000}"\nname = "X"\nids = {{ coingecko = "x" }}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_coins(path)
    assert len(str(info.value)) < len(str(path)) + 200


def test_real_symbols_names_and_ids_are_accepted(tmp_path: Path) -> None:
    symbols = ["1INCH", "BTC.B", "USDC.E", "XBT_PERP", "BTC-2", "A" * 32, "X"]
    text = "".join(
        f'[[coin]]\nsymbol = "{symbol}"\nname = "{name}"\nids = {{ coingecko = "{coin_id}" }}\n'
        for symbol, name, coin_id in zip(
            symbols,
            [
                "1inch",
                "Bitcoin (Avalanche)",
                "USD Coin.e",
                "XBT perp",
                "Bitcoin & co",
                "N" * 128,
                "Ŧ",
            ],
            ["1inch", "bitcoin-avalanche-bridged-btc-b", "usd-coin", "x:y/z", "b", "i" * 128, "x"],
            strict=True,
        )
    )
    coins = load_coins(write(tmp_path, text))
    assert [coin.symbol for coin in coins] == symbols
    assert coins[5].name == "N" * 128 and coins[5].ids == {"coingecko": "i" * 128}


def test_symbols_are_upper_cased_and_trimmed(tmp_path: Path) -> None:
    # Every reader (history, latest, the API) looks symbols up upper-cased.
    path = write(
        tmp_path,
        '[[coin]]\nsymbol = " usdc.e "\nname = " USD Coin "\nids = { coingecko = " usd-coin " }\n',
    )
    [coin] = load_coins(path)
    assert (coin.symbol, coin.name, dict(coin.ids)) == (
        "USDC.E",
        "USD Coin",
        {"coingecko": "usd-coin"},
    )


def test_disabled_coins_are_validated_too(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '[[coin]]\nsymbol = "X"\nname = "X"\nenabled = false\nids = {}\n')
    with pytest.raises(ConfigError, match=r"line 6: coin 'X': has no source"):
        load_coins(path)


def test_toml_syntax_error_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '[[coin]]\nsymbol = "ETH\nname = "Ether"\n')
    with pytest.raises(ConfigError) as info:
        load_coins(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 7" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "no [[coin]] tables"),
        ("# only a comment\n", "no [[coin]] tables"),
        ('[coin]\nsymbol = "BTC"\n', "no [[coin]] tables"),
        ('[[coins]]\nsymbol = "BTC"\n', "unknown top-level key 'coins'"),
    ],
)
def test_file_without_coins(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_coins(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"coins file not found: .*absent\.toml"):
        load_coins(tmp_path / "absent.toml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "coins.toml"
    path.write_bytes(b'[[coin]]\nsymbol = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_coins(path)
