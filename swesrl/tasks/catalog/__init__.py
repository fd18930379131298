r"""The bug catalog of the bundled suite: themed modules made of small functions, each with tests and bugs.

A `Snippet` is one function written correctly (`__fn__` is replaced by the function's name in a
repository), its tests (pass on the correct code) and its `Bug`s. A bug is a list of textual edits
that turn the correct code into the buggy code, a bug family, a new test that fails on the buggy
code and passes on the correct one, and the title / symptom of the issue a user would file.
Reproduction snippets and expected / actual outputs in issues are computed by running the code,
so they are always true. `tests/tasks/test_catalog.py` checks every bug of the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bug:
    family: str
    edits: tuple[tuple[str, str], ...]
    """(correct text, buggy text) pairs; each correct text occurs exactly once in the snippet."""
    test_name: str
    test: str
    """Body of the new test (uses `__fn__`); fails on the buggy code, passes on the fix."""
    title: str
    symptom: str


@dataclass(frozen=True)
class Snippet:
    key: str
    aliases: tuple[str, ...]
    code: str
    tests: tuple[tuple[str, str], ...]
    bugs: tuple[Bug, ...]
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Theme:
    key: str
    module_names: tuple[str, ...]
    doc: str
    snippets: tuple[Snippet, ...] = field(default_factory=tuple)


def B(
    family: str, old: str | tuple, new: str | None = None, *, name: str, test: str, title: str, symptom: str
):
    edits = ((old, new),) if isinstance(old, str) else tuple(old)
    return Bug(family, edits, name, test.strip("\n"), title, symptom)


def S(key, aliases, code, tests, bugs, imports=()):
    return Snippet(key, tuple(aliases), code.strip("\n") + "\n", tuple(tests), tuple(bugs), tuple(imports))


FAMILIES = (
    "swapped_operator",
    "off_by_one",
    "inverted_condition",
    "wrong_default",
    "missing_none_guard",
    "wrong_exception",
    "wrong_dict_key",
    "int_division",
    "wrong_sort_order",
    "boundary_condition",
    "wrong_variable",
    "mutable_default",
    "string_format",
    "missing_normalisation",
    "early_return",
    "swapped_arguments",
    "wrong_builtin",
    "wrong_initial_value",
    "missing_copy",
)

TEXT = Theme(
    "text",
    ("text", "strings", "textutils", "wording"),
    "Small string helpers: slugs, truncation, word counts and table rows.",
    (
        S(
            "slugify",
            ("slugify", "make_slug", "to_slug"),
            r'''
def __fn__(text, sep="-"):
    """Lower-case `text` and join its words with `sep` (a dash by default), for use in URLs."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return sep.join(words)
''',
            [
                ("plain_words", 'assert __fn__("hello world", sep="-") == "hello-world"'),
                ("custom_separator", 'assert __fn__("a, b & c", sep="_") == "a_b_c"'),
            ],
            [
                B(
                    "missing_normalisation",
                    "text.lower()",
                    "text",
                    name="mixed_case",
                    test='assert __fn__("Hello World") == "hello-world"',
                    title="`__fn__` mangles titles that contain capital letters",
                    symptom="Turning a title with upper-case letters into a slug loses characters.",
                ),
                B(
                    "wrong_default",
                    'sep="-"',
                    'sep="_"',
                    name="default_separator",
                    test='assert __fn__("two words") == "two-words"',
                    title="`__fn__` does not use dashes by default",
                    symptom="The docstring says slugs are joined with a dash by default, but calling it without `sep` gives something else.",
                ),
            ],
            imports=["re"],
        ),
        S(
            "truncate",
            ("truncate", "shorten", "clip_text"),
            r'''
def __fn__(text, width, suffix="..."):
    """Shorten `text` to at most `width` characters, ending with `suffix` when it is cut."""
    if len(text) <= width:
        return text
    return text[: width - len(suffix)] + suffix
''',
            [
                ("short_text_unchanged", 'assert __fn__("hi", 10) == "hi"'),
                ("long_text_cut", 'assert __fn__("hello world", 8) == "hello..."'),
            ],
            [
                B(
                    "boundary_condition",
                    "len(text) <= width",
                    "len(text) < width",
                    name="exact_width_kept",
                    test='assert __fn__("abcde", 5) == "abcde"',
                    title="`__fn__` cuts text that already fits",
                    symptom="A string whose length is exactly `width` gets shortened even though it fits.",
                ),
                B(
                    "off_by_one",
                    "text[: width - len(suffix)]",
                    "text[: width - len(suffix) - 1]",
                    name="result_fills_width",
                    test='result = __fn__("hello world", 8)\nassert result == "hello..."\nassert len(result) == 8',
                    title="`__fn__` returns less text than the requested width",
                    symptom="Truncated strings come out one character shorter than `width`, so columns do not line up.",
                ),
            ],
        ),
        S(
            "word_counts",
            ("word_counts", "count_words", "tally_words"),
            r'''
def __fn__(text):
    """Count how often each word occurs, ignoring case and surrounding punctuation."""
    counts = {}
    for word in text.split():
        word = word.strip(".,;:!?()'").lower()
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts
''',
            [
                ("empty_text", 'assert __fn__("") == {}'),
                ("only_punctuation", 'assert __fn__("... !!") == {}'),
            ],
            [
                B(
                    "missing_normalisation",
                    """word.strip(".,;:!?()'").lower()""",
                    """word.strip(".,;:!?()'")""",
                    name="case_insensitive",
                    test='assert __fn__("The cat saw the dog")["the"] == 2',
                    title="`__fn__` counts the same word twice when its case differs",
                    symptom="Words at the start of a sentence are counted separately from the same word elsewhere.",
                ),
                B(
                    "wrong_initial_value",
                    "counts.get(word, 0) + 1",
                    "counts.get(word, 1) + 1",
                    name="counts_are_exact",
                    test='assert __fn__("x y x") == {"x": 2, "y": 1}',
                    title="`__fn__` over-counts words",
                    symptom="Every count returned by the function is too high.",
                ),
            ],
        ),
        S(
            "format_row",
            ("format_row", "render_row", "table_row"),
            r'''
def __fn__(cells, widths):
    """Render cells left-aligned in columns of the given widths, separated by ' | '."""
    if len(cells) != len(widths):
        raise ValueError("cells and widths differ in length")
    return " | ".join(f"{str(cell):<{width}}" for cell, width in zip(cells, widths))
''',
            [
                ("exact_widths", 'assert __fn__(["a", "bb"], [1, 2]) == "a | bb"'),
                (
                    "length_mismatch",
                    'with pytest.raises(ValueError):\n    __fn__(["a", "b"], [1])',
                ),
            ],
            [
                B(
                    "string_format",
                    ":<{width}",
                    ":>{width}",
                    name="left_aligned",
                    test='assert __fn__(["ab", "c"], [4, 3]) == "ab   | c  "',
                    title="`__fn__` aligns cells on the wrong side",
                    symptom="Cells are supposed to be left-aligned in their columns, but the padding ends up on the wrong side.",
                ),
                B(
                    "wrong_exception",
                    'raise ValueError("cells',
                    'raise IndexError("cells',
                    name="mismatch_is_value_error",
                    test='with pytest.raises(ValueError):\n    __fn__(["a"], [1, 2])',
                    title="`__fn__` raises an unexpected exception type for mismatched columns",
                    symptom="Passing a different number of cells and widths raises an exception our callers do not catch; every other validation error in the package is a ValueError.",
                ),
            ],
        ),
        S(
            "replace_all",
            ("replace_all", "substitute", "apply_replacements"),
            r'''
def __fn__(text, mapping):
    """Replace every key of `mapping` found in `text` by its value, longest keys first."""
    for old in sorted(mapping, key=len, reverse=True):
        text = text.replace(old, mapping[old])
    return text
''',
            [("empty_mapping", 'assert __fn__("abc", {}) == "abc"')],
            [
                B(
                    "swapped_arguments",
                    "text.replace(old, mapping[old])",
                    "text.replace(mapping[old], old)",
                    name="simple_replacement",
                    test='assert __fn__("hello bob", {"bob": "alice"}) == "hello alice"',
                    title="`__fn__` does not replace anything",
                    symptom="Keys of the mapping are left in the text untouched.",
                ),
                B(
                    "wrong_sort_order",
                    "key=len, reverse=True",
                    "key=len, reverse=False",
                    name="longest_key_wins",
                    test='assert __fn__("cat catalog", {"cat": "dog", "catalog": "list"}) == "dog list"',
                    title="`__fn__` breaks words when one key is a prefix of another",
                    symptom="When one key is a prefix of a longer key, the longer key is never replaced.",
                ),
            ],
        ),
        S(
            "initials",
            ("initials", "name_initials", "monogram"),
            r'''
def __fn__(name):
    """Upper-case initials of a person's name, e.g. 'ada lovelace' -> 'AL'; None gives ''."""
    if name is None:
        return ""
    return "".join(part[0].upper() for part in name.split())
''',
            [("two_words", 'assert __fn__("ada lovelace") == "AL"')],
            [
                B(
                    "missing_none_guard",
                    'if name is None:\n        return ""\n    return',
                    "return",
                    name="none_gives_empty",
                    test='assert __fn__(None) == ""',
                    title="`__fn__` crashes for users without a name",
                    symptom="Some of our user records have no name (None). The docstring promises an empty string for them.",
                ),
            ],
        ),
    ),
)

STATS = Theme(
    "stats",
    ("stats", "numeric", "mathutil", "calc"),
    "Descriptive statistics and small numeric helpers.",
    (
        S(
            "mean",
            ("mean", "average", "arithmetic_mean"),
            r'''
def __fn__(values):
    """Arithmetic mean of a non-empty sequence of numbers."""
    values = list(values)
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)
''',
            [
                ("whole_result", "assert __fn__([2, 4, 6]) == 4"),
                ("empty_raises", 'with pytest.raises(ValueError, match="empty"):\n    __fn__([])'),
            ],
            [
                B(
                    "int_division",
                    "sum(values) / len(values)",
                    "sum(values) // len(values)",
                    name="fractional_mean",
                    test="assert __fn__([1, 2]) == 1.5",
                    title="`__fn__` loses the fractional part",
                    symptom="The mean of values that do not divide evenly comes out rounded down.",
                ),
                B(
                    "wrong_exception",
                    'raise ValueError("mean',
                    'raise ZeroDivisionError("mean',
                    name="empty_is_value_error",
                    test='with pytest.raises(ValueError, match="empty"):\n    __fn__(())',
                    title="`__fn__` of an empty sequence raises the wrong exception",
                    symptom="The docs say an empty input is a ValueError, which is what our code catches, but something else is raised.",
                ),
            ],
        ),
        S(
            "median",
            ("median", "middle_value", "med"),
            r'''
def __fn__(values):
    """Median of a non-empty sequence; the mean of the two middle values for even lengths."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of an empty sequence")
    mid = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
''',
            [
                ("odd_length", "assert __fn__([3, 1, 2]) == 2"),
                ("single", "assert __fn__([7]) == 7"),
            ],
            [
                B(
                    "inverted_condition",
                    "len(ordered) % 2 == 1",
                    "len(ordered) % 2 == 0",
                    name="even_length",
                    test="assert __fn__([4, 1, 3, 2]) == 2.5",
                    title="`__fn__` is wrong for even-length input",
                    symptom="For an even number of values the result is not the average of the two middle values.",
                ),
                B(
                    "off_by_one",
                    "(ordered[mid - 1] + ordered[mid]) / 2",
                    "(ordered[mid] + ordered[mid + 1]) / 2",
                    name="even_length_middle",
                    test="assert __fn__([10, 20, 30, 40, 50, 60]) == 35",
                    title="`__fn__` picks the wrong middle values",
                    symptom="With an even number of values the median is too large (or fails for two values).",
                ),
                B(
                    "missing_normalisation",
                    "ordered = sorted(values)",
                    "ordered = list(values)",
                    name="unsorted_input",
                    test="assert __fn__([5, 1, 3]) == 3",
                    title="`__fn__` depends on the order of the input",
                    symptom="The result changes when the same numbers are passed in a different order.",
                ),
            ],
        ),
        S(
            "clamp",
            ("clamp", "bound", "limit_to"),
            r'''
def __fn__(value, low, high):
    """Limit `value` to the closed interval [low, high]."""
    if low > high:
        raise ValueError(f"empty interval [{low}, {high}]")
    return max(low, min(value, high))
''',
            [
                ("inside", "assert __fn__(5, 0, 10) == 5"),
                ("bad_interval", "with pytest.raises(ValueError):\n    __fn__(1, 5, 2)"),
            ],
            [
                B(
                    "wrong_builtin",
                    "max(low, min(value, high))",
                    "min(low, max(value, high))",
                    name="above_range",
                    test="assert __fn__(15, 0, 10) == 10",
                    title="`__fn__` returns the wrong bound",
                    symptom="Values above the interval are not limited to the upper bound.",
                ),
                B(
                    "boundary_condition",
                    "if low > high:",
                    "if low >= high:",
                    name="single_point_interval",
                    test="assert __fn__(3, 4, 4) == 4",
                    title="`__fn__` rejects a one-point interval",
                    symptom="An interval whose bounds are equal is a valid closed interval, but the call raises.",
                ),
            ],
        ),
        S(
            "percent",
            ("percent", "percentage", "ratio_pct"),
            r'''
def __fn__(part, whole, digits=1):
    """`part` as a percentage of `whole`, rounded to `digits` decimals; 0.0 when whole is 0."""
    if whole == 0:
        return 0.0
    return round(100 * part / whole, digits)
''',
            [
                ("quarter", "assert __fn__(1, 4, digits=2) == 25.0"),
                ("zero_whole", "assert __fn__(3, 0) == 0.0"),
            ],
            [
                B(
                    "wrong_default",
                    "digits=1",
                    "digits=0",
                    name="one_decimal_default",
                    test="assert __fn__(1, 3) == 33.3",
                    title="`__fn__` rounds too much by default",
                    symptom="The docs say percentages keep one decimal by default, but they come back as whole numbers.",
                ),
                B(
                    "swapped_operator",
                    "100 * part / whole",
                    "100 * whole / part",
                    name="small_share",
                    test="assert __fn__(1, 8, digits=3) == 12.5",
                    title="`__fn__` returns values above 100 for a small part",
                    symptom="A part that is smaller than the whole gives a percentage far above 100.",
                ),
            ],
        ),
        S(
            "dot",
            ("dot", "dot_product", "inner_product"),
            r'''
def __fn__(a, b):
    """Dot product of two equal-length vectors."""
    if len(a) != len(b):
        raise ValueError("vectors differ in length")
    total = 0
    for x, y in zip(a, b):
        total += x * y
    return total
''',
            [
                ("empty_vectors", "assert __fn__([], []) == 0"),
                ("length_mismatch", "with pytest.raises(ValueError):\n    __fn__([1], [1, 2])"),
            ],
            [
                B(
                    "wrong_initial_value",
                    "total = 0\n",
                    "total = 1\n",
                    name="two_dimensions",
                    test="assert __fn__([1, 2], [3, 4]) == 11",
                    title="`__fn__` is off by one",
                    symptom="Every dot product is one more than it should be.",
                ),
                B(
                    "swapped_operator",
                    "total += x * y",
                    "total += x + y",
                    name="products_summed",
                    test="assert __fn__([2, 3], [4, 5]) == 23",
                    title="`__fn__` gives wrong results",
                    symptom="The result does not match the dot product computed by hand.",
                ),
            ],
        ),
        S(
            "moving_average",
            ("moving_average", "rolling_mean", "sliding_mean"),
            r'''
def __fn__(values, window):
    """Means of every run of `window` consecutive values."""
    if window < 1:
        raise ValueError("window must be at least 1")
    return [sum(values[i : i + window]) / window for i in range(len(values) - window + 1)]
''',
            [
                ("window_too_large", "assert __fn__([1, 2], 5) == []"),
                ("bad_window", "with pytest.raises(ValueError):\n    __fn__([1, 2], -1)"),
            ],
            [
                B(
                    "off_by_one",
                    "range(len(values) - window + 1)",
                    "range(len(values) - window)",
                    name="all_windows",
                    test="assert __fn__([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]",
                    title="`__fn__` drops the last window",
                    symptom="The last group of values never shows up in the result.",
                ),
                B(
                    "boundary_condition",
                    "if window < 1:",
                    "if window < 0:",
                    name="zero_window",
                    test='with pytest.raises(ValueError, match="window"):\n    __fn__([1, 2], 0)',
                    title="`__fn__` with a zero window fails with a confusing error",
                    symptom="A window of zero should be rejected with a clear message, but it fails deep inside the computation instead.",
                ),
            ],
        ),
    ),
)

SEQS = Theme(
    "seqs",
    ("seqs", "listutils", "iterutils", "sequences"),
    "Helpers for lists and other sequences.",
    (
        S(
            "chunk",
            ("chunk", "chunked", "batches"),
            r'''
def __fn__(items, size):
    """Split `items` into consecutive lists of at most `size` elements."""
    if size <= 0:
        raise ValueError("size must be positive")
    items = list(items)
    return [items[i : i + size] for i in range(0, len(items), size)]
''',
            [
                ("empty", "assert __fn__([], 3) == []"),
                ("negative_size", 'with pytest.raises(ValueError, match="positive"):\n    __fn__([1], -1)'),
            ],
            [
                B(
                    "off_by_one",
                    "items[i : i + size]",
                    "items[i : i + size - 1]",
                    name="pairs",
                    test="assert __fn__([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]",
                    title="`__fn__` makes chunks that are too small and loses items",
                    symptom="Chunks have fewer elements than `size` and some items disappear.",
                ),
                B(
                    "boundary_condition",
                    "if size <= 0:",
                    "if size < 0:",
                    name="zero_size",
                    test='with pytest.raises(ValueError, match="positive"):\n    __fn__([1, 2], 0)',
                    title="`__fn__` with size 0 fails with an unhelpful error",
                    symptom="Passing a size of zero should be reported as an invalid size, but a confusing internal error comes out.",
                ),
                B(
                    "wrong_exception",
                    'raise ValueError("size',
                    'raise TypeError("size',
                    name="invalid_size_is_value_error",
                    test="with pytest.raises(ValueError):\n    __fn__([1, 2], -2)",
                    title="`__fn__` raises the wrong exception for an invalid size",
                    symptom="An invalid size is a bad value, not a bad type; our callers catch ValueError.",
                ),
            ],
        ),
        S(
            "dedupe",
            ("dedupe", "unique", "distinct"),
            r'''
def __fn__(items, key=None):
    """Drop repeated items, keeping the first occurrence and the original order."""
    seen = set()
    result = []
    for item in items:
        marker = item if key is None else key(item)
        if marker not in seen:
            seen.add(marker)
            result.append(item)
    return result
''',
            [("empty", "assert __fn__([]) == []")],
            [
                B(
                    "inverted_condition",
                    "if marker not in seen:",
                    "if marker in seen:",
                    name="keeps_order",
                    test="assert __fn__([3, 1, 3, 2, 1]) == [3, 1, 2]",
                    title="`__fn__` returns an empty list",
                    symptom="Whatever the input, nothing comes back.",
                ),
                B(
                    "wrong_variable",
                    "result.append(item)",
                    "result.append(marker)",
                    name="key_returns_items",
                    test='assert __fn__(["aa", "b", "cc"], key=len) == ["aa", "b"]',
                    title="`__fn__` with `key` returns keys instead of items",
                    symptom="When a key function is given the result holds the computed keys, not the original items.",
                ),
            ],
        ),
        S(
            "append_unique",
            ("append_unique", "add_once", "remember"),
            r'''
def __fn__(item, bucket=None):
    """Append `item` to `bucket` (a new list when omitted) unless present; return the list."""
    if bucket is None:
        bucket = []
    if item not in bucket:
        bucket.append(item)
    return bucket
''',
            [
                ("already_present", "assert __fn__(1, [1, 2]) == [1, 2]"),
                ("given_bucket", 'bucket = []\n__fn__("x", bucket)\nassert bucket == ["x"]'),
            ],
            [
                B(
                    "mutable_default",
                    [
                        ("bucket=None):", "bucket=[]):"),
                        ("    if bucket is None:\n        bucket = []\n", ""),
                    ],
                    name="fresh_list_each_call",
                    test='assert __fn__("a") == ["a"]\nassert __fn__("b") == ["b"]',
                    title="`__fn__` remembers items from earlier calls",
                    symptom="Calling it without a list returns items that were added by previous, unrelated calls.",
                ),
            ],
        ),
        S(
            "top_n",
            ("top_n", "largest", "best_of"),
            r'''
def __fn__(items, n, key=None):
    """The `n` largest items, largest first."""
    if n <= 0:
        return []
    return sorted(items, key=key, reverse=True)[:n]
''',
            [("zero", "assert __fn__([1, 2], 0) == []")],
            [
                B(
                    "wrong_sort_order",
                    "reverse=True)",
                    "reverse=False)",
                    name="largest_first",
                    test="assert __fn__([5, 1, 9, 3], 2) == [9, 5]",
                    title="`__fn__` returns the smallest items",
                    symptom="Asking for the top items returns the lowest ones.",
                ),
                B(
                    "off_by_one",
                    "[:n]",
                    "[: n - 1]",
                    name="returns_n_items",
                    test="assert __fn__([4, 8, 6, 2], 3) == [8, 6, 4]",
                    title="`__fn__` returns one item too few",
                    symptom="Asking for the top 3 gives only 2 items.",
                ),
            ],
        ),
        S(
            "index_of",
            ("index_of", "find_index", "position_of"),
            r'''
def __fn__(items, target):
    """Index of the first element equal to `target`, or -1 when absent."""
    for i, item in enumerate(items):
        if item == target:
            return i
    return -1
''',
            [
                ("absent_in_empty", "assert __fn__([], 1) == -1"),
                ("first_position", "assert __fn__([7, 8], 7) == 0"),
            ],
            [
                B(
                    "early_return",
                    "            return i\n    return -1",
                    "            return i\n        else:\n            return -1\n    return -1",
                    name="later_position",
                    test='assert __fn__(["a", "b", "c"], "c") == 2',
                    title="`__fn__` only finds the first element",
                    symptom="Elements that are present but not at the start of the list are reported as missing.",
                ),
            ],
        ),
        S(
            "all_positive",
            ("all_positive", "strictly_positive", "positive_only"),
            r'''
def __fn__(values):
    """True when there is at least one value and every value is greater than zero."""
    values = list(values)
    return bool(values) and all(v > 0 for v in values)
''',
            [
                ("empty_is_false", "assert __fn__([]) is False"),
                ("positive", "assert __fn__([1, 2]) is True"),
            ],
            [
                B(
                    "wrong_builtin",
                    "all(v > 0",
                    "any(v > 0",
                    name="one_negative",
                    test="assert __fn__([1, -2, 3]) is False",
                    title="`__fn__` accepts negative numbers",
                    symptom="A list with a negative value is reported as all positive.",
                ),
                B(
                    "boundary_condition",
                    "v > 0 for",
                    "v >= 0 for",
                    name="zero_is_not_positive",
                    test="assert __fn__([0, 1]) is False",
                    title="`__fn__` treats zero as positive",
                    symptom="Zero is not greater than zero, but a list containing it passes the check.",
                ),
            ],
        ),
        S(
            "contains_all",
            ("contains_all", "has_all", "includes_all"),
            r'''
def __fn__(items, required):
    """True when every element of `required` occurs in `items`."""
    present = set(items)
    for need in required:
        if need not in present:
            return False
    return True
''',
            [
                ("nothing_required", "assert __fn__([1], []) is True"),
                ("missing_first", "assert __fn__([1, 2], [3]) is False"),
            ],
            [
                B(
                    "early_return",
                    "            return False\n    return True",
                    "            return False\n        return True\n    return True",
                    name="missing_later",
                    test="assert __fn__([1, 2, 3], [1, 4]) is False",
                    title="`__fn__` ignores all but the first required element",
                    symptom="If the first required element is present, the result is True even when others are missing.",
                ),
            ],
        ),
        S(
            "select_where",
            ("select_where", "filter_records", "matching"),
            r'''
def __fn__(records, **criteria):
    """Records (dicts) whose fields equal all the given criteria, in their original order."""
    matches = []
    for record in records:
        if all(record.get(k) == v for k, v in criteria.items()):
            matches.append(record)
    return matches
''',
            [("no_records", "assert __fn__([], a=1) == []")],
            [
                B(
                    "early_return",
                    "            matches.append(record)\n    return matches",
                    "            matches.append(record)\n            return matches\n    return matches",
                    name="all_matches",
                    test='rows = [{"k": 1}, {"k": 2}, {"k": 1}]\nassert __fn__(rows, k=1) == [{"k": 1}, {"k": 1}]',
                    title="`__fn__` returns at most one record",
                    symptom="When several records match, only the first one is returned.",
                ),
            ],
        ),
    ),
)

CONFIG = Theme(
    "config",
    ("config", "settings", "options", "conf"),
    "Reading and merging configuration values.",
    (
        S(
            "parse_bool",
            ("parse_bool", "to_bool", "truthy"),
            r'''
def __fn__(value, default=False):
    """Interpret strings such as 'yes', 'On' or ' true ' as booleans; None gives `default`."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return value.strip().lower() in ("1", "true", "yes", "on")
''',
            [
                ("yes", 'assert __fn__("yes") is True'),
                ("zero", 'assert __fn__("0") is False'),
                ("bool_passthrough", "assert __fn__(True) is True"),
            ],
            [
                B(
                    "missing_none_guard",
                    "    if value is None:\n        return default\n",
                    "",
                    name="none_gives_default",
                    test="assert __fn__(None) is False\nassert __fn__(None, default=True) is True",
                    title="`__fn__` crashes on unset values",
                    symptom="Settings that are not set at all (None) should fall back to the default, but the call fails.",
                ),
                B(
                    "missing_normalisation",
                    ".strip().lower() in",
                    ".strip() in",
                    name="upper_case",
                    test='assert __fn__("TRUE") is True\nassert __fn__(" On ") is True',
                    title="`__fn__` does not understand upper-case values",
                    symptom="Values such as TRUE or On from environment files are treated as false.",
                ),
            ],
        ),
        S(
            "get_path",
            ("get_path", "lookup", "dig"),
            r'''
def __fn__(config, dotted, default=None):
    """Look up 'a.b.c' in nested dicts; return `default` when any part is missing."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
''',
            [
                ("missing_top", 'assert __fn__({}, "a", default=1) == 1'),
                ("nested", 'assert __fn__({"a": {"b": 1}}, "a.b") == 1'),
            ],
            [
                B(
                    "wrong_variable",
                    "node = node[part]",
                    "node = config[part]",
                    name="three_levels",
                    test='assert __fn__({"a": {"b": {"c": 3}}}, "a.b.c") == 3',
                    title="`__fn__` fails for nested keys",
                    symptom="Looking up a dotted path deeper than one level fails or returns the wrong value.",
                ),
                B(
                    "missing_none_guard",
                    "if not isinstance(node, dict) or part not in node:",
                    "if part not in node:",
                    name="none_in_the_middle",
                    test='assert __fn__({"a": None}, "a.b") is None\nassert __fn__({"a": None}, "a.b", default=2) == 2',
                    title="`__fn__` crashes when a section is null",
                    symptom="If a section of the configuration is null (None), looking up a key below it crashes instead of returning the default.",
                ),
            ],
        ),
        S(
            "merge",
            ("merge", "deep_merge", "overlay"),
            r'''
def __fn__(base, override):
    """Recursively merge `override` into a copy of `base`; neither argument is modified."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = __fn__(result[key], value)
        else:
            result[key] = value
    return result
''',
            [("disjoint", 'assert __fn__({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}')],
            [
                B(
                    "swapped_arguments",
                    "__fn__(result[key], value)",
                    "__fn__(value, result[key])",
                    name="nested_override_wins",
                    test='merged = __fn__({"db": {"host": "a", "port": 1}}, {"db": {"port": 2}})\nassert merged == {"db": {"host": "a", "port": 2}}',
                    title="`__fn__` ignores overrides in nested sections",
                    symptom="Overriding a value inside a nested section keeps the base value.",
                ),
                B(
                    "missing_copy",
                    "result = dict(base)",
                    "result = base",
                    name="base_untouched",
                    test='base = {"a": 1}\n__fn__(base, {"a": 2, "b": 3})\nassert base == {"a": 1}',
                    title="`__fn__` modifies its first argument",
                    symptom="After merging, the base configuration dict has changed too, which breaks our defaults for later calls.",
                ),
            ],
        ),
        S(
            "parse_pairs",
            ("parse_pairs", "parse_kv", "parse_options"),
            r'''
def __fn__(text, sep=";"):
    """Parse 'a=1; b=2' into {'a': '1', 'b': '2'}; blank entries are skipped."""
    result = {}
    for chunk in text.split(sep):
        if not chunk.strip():
            continue
        key, _, value = chunk.partition("=")
        result[key.strip()] = value.strip()
    return result
''',
            [
                ("empty", 'assert __fn__("", sep=";") == {}'),
                ("single", 'assert __fn__("a=1") == {"a": "1"}'),
            ],
            [
                B(
                    "missing_normalisation",
                    "result[key.strip()] = value.strip()",
                    "result[key] = value",
                    name="spaces_around",
                    test='assert __fn__("a = 1; b=2") == {"a": "1", "b": "2"}',
                    title="`__fn__` keeps spaces around keys and values",
                    symptom="Options written with spaces around `=` or after `;` produce keys that do not match.",
                ),
                B(
                    "wrong_default",
                    'sep=";"',
                    'sep=","',
                    name="semicolon_default",
                    test='assert __fn__("x=1;y=2") == {"x": "1", "y": "2"}',
                    title="`__fn__` does not split on semicolons by default",
                    symptom="The documented format separates entries with semicolons, but they are not split unless `sep` is passed.",
                ),
                B(
                    "inverted_condition",
                    "if not chunk.strip():",
                    "if chunk.strip():",
                    name="two_entries",
                    test='assert __fn__("p=1;q=2") == {"p": "1", "q": "2"}',
                    title="`__fn__` always returns an empty dict",
                    symptom="No option is ever parsed, whatever the input.",
                ),
            ],
        ),
        S(
            "env_int",
            ("env_int", "int_setting", "read_int"),
            r'''
def __fn__(env, name, default=0):
    """Read an integer setting from a mapping such as os.environ; unset or blank gives `default`."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
''',
            [
                ("blank", 'assert __fn__({"N": " "}, "N", default=3) == 3'),
                ("value", 'assert __fn__({"N": "12"}, "N") == 12'),
            ],
            [
                B(
                    "wrong_exception",
                    'raise ValueError(f"{name}',
                    'raise KeyError(f"{name}',
                    name="not_a_number",
                    test='with pytest.raises(ValueError, match="integer"):\n    __fn__({"N": "ten"}, "N")',
                    title="`__fn__` raises a confusing error for non-numeric values",
                    symptom="A setting that is not a number should give a ValueError, like the rest of the package does.",
                ),
                B(
                    "wrong_dict_key",
                    "env.get(name)",
                    "env.get(name.lower())",
                    name="upper_case_name",
                    test='assert __fn__({"WORKERS": "4"}, "WORKERS") == 4',
                    title="`__fn__` ignores variables that are set",
                    symptom="Environment variables that are definitely set are reported as missing and the default is used.",
                ),
                B(
                    "missing_none_guard",
                    'if raw is None or raw.strip() == "":',
                    'if raw.strip() == "":',
                    name="unset_gives_default",
                    test='assert __fn__({}, "PORT", default=8080) == 8080',
                    title="`__fn__` crashes when the variable is not set",
                    symptom="An unset variable should give the default value, but the call raises.",
                ),
            ],
        ),
    ),
)

ORDERS = Theme(
    "orders",
    ("orders", "billing", "cart", "invoice"),
    "Order totals, discounts, prices and stock keeping.",
    (
        S(
            "order_total",
            ("order_total", "cart_total", "subtotal"),
            r'''
def __fn__(lines):
    """Sum of price * quantity over order lines (dicts with 'price' and optional 'quantity')."""
    total = 0
    for line in lines:
        total += line["price"] * line.get("quantity", 1)
    return round(total, 2)
''',
            [
                ("no_lines", "assert __fn__([]) == 0"),
                ("single_unit", 'assert __fn__([{"price": 2.5}]) == 2.5'),
            ],
            [
                B(
                    "wrong_dict_key",
                    'line.get("quantity", 1)',
                    'line.get("qty", 1)',
                    name="quantities",
                    test='lines = [{"price": 2.0, "quantity": 3}, {"price": 1.5, "quantity": 2}]\nassert __fn__(lines) == 9.0',
                    title="`__fn__` ignores quantities",
                    symptom="Orders with several units of an item are totalled as if each line had one unit.",
                ),
                B(
                    "wrong_initial_value",
                    "total = 0\n",
                    "total = 1\n",
                    name="exact_total",
                    test='assert __fn__([{"price": 4.0, "quantity": 2}]) == 8.0',
                    title="`__fn__` adds one to every total",
                    symptom="Every total is exactly 1 higher than the sum of its lines.",
                ),
            ],
        ),
        S(
            "apply_discount",
            ("apply_discount", "discounted", "price_after_discount"),
            r'''
def __fn__(price, percent):
    """Price after taking `percent` (0-100) off, rounded to cents."""
    if not 0 <= percent <= 100:
        raise ValueError(f"discount out of range: {percent}")
    return round(price * (1 - percent / 100), 2)
''',
            [
                ("no_discount", "assert __fn__(80.0, 0) == 80.0"),
                ("too_large", "with pytest.raises(ValueError):\n    __fn__(10, 150)"),
            ],
            [
                B(
                    "swapped_operator",
                    "(1 - percent / 100)",
                    "(1 + percent / 100)",
                    name="fifteen_percent",
                    test="assert __fn__(200.0, 15) == 170.0",
                    title="`__fn__` makes things more expensive",
                    symptom="Applying a discount raises the price instead of lowering it.",
                ),
                B(
                    "int_division",
                    "percent / 100",
                    "percent // 100",
                    name="partial_discount",
                    test="assert __fn__(50.0, 20) == 40.0",
                    title="`__fn__` has no effect",
                    symptom="Discounts below 100 percent leave the price unchanged.",
                ),
                B(
                    "wrong_exception",
                    'raise ValueError(f"discount',
                    'raise OverflowError(f"discount',
                    name="negative_discount",
                    test='with pytest.raises(ValueError, match="range"):\n    __fn__(10, -5)',
                    title="`__fn__` raises OverflowError for invalid discounts",
                    symptom="An invalid discount percentage should be a ValueError, which is what our form validation catches.",
                ),
            ],
        ),
        S(
            "format_price",
            ("format_price", "format_money", "money_label"),
            r'''
def __fn__(amount, currency="USD"):
    """Format an amount with thousands separators and two decimals, e.g. '1,234.50 USD'."""
    return f"{amount:,.2f} {currency}"
''',
            [("small_amount", 'assert __fn__(3, "EUR") == "3.00 EUR"')],
            [
                B(
                    "string_format",
                    "{amount:,.2f}",
                    "{amount:.2f}",
                    name="thousands",
                    test='assert __fn__(1234.5, "GBP") == "1,234.50 GBP"',
                    title="`__fn__` has no thousands separators",
                    symptom="Large amounts are hard to read: the documented format groups thousands with commas.",
                ),
                B(
                    "wrong_default",
                    'currency="USD"',
                    'currency="EUR"',
                    name="default_currency",
                    test='assert __fn__(5) == "5.00 USD"',
                    title="`__fn__` uses the wrong currency by default",
                    symptom="Prices without an explicit currency should be in US dollars.",
                ),
            ],
        ),
        S(
            "restock",
            ("restock", "add_stock", "receive_stock"),
            r'''
def __fn__(stock, sku, quantity):
    """Return a new stock mapping with `quantity` units of `sku` added; `stock` is not modified."""
    if quantity < 0:
        raise ValueError("quantity must not be negative")
    updated = dict(stock)
    updated[sku] = updated.get(sku, 0) + quantity
    return updated
''',
            [
                ("existing_sku", 'assert __fn__({"a": 2}, "a", 3) == {"a": 5}'),
                ("negative", 'with pytest.raises(ValueError):\n    __fn__({}, "a", -1)'),
            ],
            [
                B(
                    "wrong_initial_value",
                    "updated.get(sku, 0)",
                    "updated.get(sku, 1)",
                    name="new_sku",
                    test='assert __fn__({}, "b", 4) == {"b": 4}',
                    title="`__fn__` adds a phantom unit to new products",
                    symptom="Receiving stock for a product we never had gives one unit more than received.",
                ),
                B(
                    "missing_copy",
                    "updated = dict(stock)",
                    "updated = stock",
                    name="input_untouched",
                    test='stock = {"a": 1}\n__fn__(stock, "a", 2)\nassert stock == {"a": 1}',
                    title="`__fn__` changes the stock it was given",
                    symptom="The function is documented to return a new mapping, but the original dict changes too.",
                ),
                B(
                    "boundary_condition",
                    "if quantity < 0:",
                    "if quantity <= 0:",
                    name="zero_quantity",
                    test='assert __fn__({"a": 1}, "a", 0) == {"a": 1}',
                    title="`__fn__` rejects an empty delivery",
                    symptom="Recording a delivery of zero units raises, although only negative quantities are invalid.",
                ),
            ],
        ),
        S(
            "low_stock",
            ("low_stock", "needs_reorder", "reorder_list"),
            r'''
def __fn__(stock, threshold=5):
    """SKUs whose quantity is at or below `threshold`, ordered by quantity then name."""
    low = [sku for sku, qty in stock.items() if qty <= threshold]
    return sorted(low, key=lambda sku: (stock[sku], sku))
''',
            [("nothing", "assert __fn__({}) == []"), ("plenty", 'assert __fn__({"a": 100}) == []')],
            [
                B(
                    "boundary_condition",
                    "qty <= threshold",
                    "qty < threshold",
                    name="at_threshold",
                    test='assert __fn__({"a": 5, "b": 9}) == ["a"]',
                    title="`__fn__` misses items exactly at the threshold",
                    symptom="Products whose quantity equals the threshold are not listed for reordering.",
                ),
                B(
                    "wrong_default",
                    "threshold=5",
                    "threshold=10",
                    name="default_threshold",
                    test='assert __fn__({"a": 4, "b": 8}) == ["a"]',
                    title="`__fn__` lists too many products by default",
                    symptom="Without an explicit threshold, products with plenty of stock are flagged.",
                ),
                B(
                    "wrong_sort_order",
                    "(stock[sku], sku)",
                    "(-stock[sku], sku)",
                    name="lowest_first",
                    test='assert __fn__({"x": 3, "y": 1, "z": 3}, threshold=3) == ["y", "x", "z"]',
                    title="`__fn__` lists the most urgent products last",
                    symptom="The products with the lowest quantity should come first.",
                ),
            ],
        ),
        S(
            "by_category",
            ("by_category", "group_by_category", "category_index"),
            r'''
def __fn__(products):
    """Map each category to the sorted names of its products."""
    groups = {}
    for product in products:
        groups.setdefault(product["category"], []).append(product["name"])
    return {category: sorted(names) for category, names in groups.items()}
''',
            [("empty", "assert __fn__([]) == {}")],
            [
                B(
                    "wrong_dict_key",
                    'append(product["name"])',
                    'append(product["category"])',
                    name="names_listed",
                    test='items = [{"name": "pen", "category": "office"}, {"name": "ink", "category": "office"}]\nassert __fn__(items) == {"office": ["ink", "pen"]}',
                    title="`__fn__` does not list product names",
                    symptom="The lists in the result do not contain the product names.",
                ),
            ],
        ),
    ),
)

TIME = Theme(
    "time",
    ("timeutil", "durations", "clock", "timefmt"),
    "Durations, clock times and calendar helpers (no datetime needed).",
    (
        S(
            "format_duration",
            ("format_duration", "hms", "clock_string"),
            r'''
def __fn__(seconds):
    """Format a number of seconds as H:MM:SS."""
    if seconds < 0:
        raise ValueError("negative duration")
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
''',
            [
                ("zero", 'assert __fn__(0) == "0:00:00"'),
                ("negative", "with pytest.raises(ValueError):\n    __fn__(-1)"),
            ],
            [
                B(
                    "string_format",
                    "{secs:02d}",
                    "{secs:2d}",
                    name="padded_seconds",
                    test='assert __fn__(3725) == "1:02:05"',
                    title="`__fn__` output has a space in it",
                    symptom="Durations with fewer than ten seconds are printed with a blank instead of a leading zero.",
                ),
                B(
                    "swapped_arguments",
                    "divmod(int(seconds), 60)",
                    "divmod(60, int(seconds))",
                    name="hour_minutes_seconds",
                    test='assert __fn__(3725) == "1:02:05"',
                    title="`__fn__` gives nonsense durations",
                    symptom="The formatted duration has nothing to do with the number of seconds passed in.",
                ),
            ],
        ),
        S(
            "parse_duration",
            ("parse_duration", "to_seconds", "duration_seconds"),
            r'''
def __fn__(text):
    """Parse durations such as '1h30m' or '45s' into seconds (units h, m, s; any case)."""
    unit_seconds = {"h": 3600, "m": 60, "s": 1}
    total = 0
    for amount, unit in re.findall(r"(\d+)\s*([hms])", text.lower()):
        total += int(amount) * unit_seconds[unit]
    return total
''',
            [("empty", 'assert __fn__("") == 0')],
            [
                B(
                    "missing_normalisation",
                    "text.lower())",
                    "text)",
                    name="upper_case_units",
                    test='assert __fn__("2H") == 7200',
                    title="`__fn__` ignores upper-case units",
                    symptom="Durations written with capital units, as our config files do, parse as zero seconds.",
                ),
                B(
                    "swapped_operator",
                    "int(amount) * unit_seconds[unit]",
                    "int(amount) + unit_seconds[unit]",
                    name="hours_and_minutes",
                    test='assert __fn__("1h30m") == 5400',
                    title="`__fn__` returns tiny durations",
                    symptom="An hour and a half comes out as a few thousand seconds short.",
                ),
            ],
            imports=["re"],
        ),
        S(
            "is_leap_year",
            ("is_leap_year", "leap_year", "is_leap"),
            r'''
def __fn__(year):
    """Gregorian leap-year rule."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
''',
            [("typical", "assert __fn__(2024) is True"), ("common_year", "assert __fn__(2023) is False")],
            [
                B(
                    "inverted_condition",
                    "year % 100 != 0",
                    "year % 100 == 0",
                    name="centuries",
                    test="assert __fn__(1900) is False\nassert __fn__(2000) is True\nassert __fn__(2024) is True",
                    title="`__fn__` is wrong for most years",
                    symptom="Ordinary leap years like 2024 are not recognised, and 1900 is reported as a leap year.",
                ),
                B(
                    "swapped_operator",
                    "year % 4 == 0 and (",
                    "year % 4 == 0 or (",
                    name="odd_years",
                    test="assert __fn__(2019) is False\nassert __fn__(1900) is False",
                    title="`__fn__` says odd years are leap years",
                    symptom="Years that are not divisible by four are reported as leap years.",
                ),
            ],
        ),
        S(
            "add_minutes",
            ("add_minutes", "shift_time", "clock_add"),
            r'''
def __fn__(hhmm, minutes):
    """Add minutes to a 'HH:MM' wall-clock time, wrapping around midnight."""
    hours, mins = (int(part) for part in hhmm.split(":"))
    total = (hours * 60 + mins + minutes) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}"
''',
            [("same_hour", 'assert __fn__("09:15", 30) == "09:45"')],
            [
                B(
                    "int_division",
                    "{total // 60:02d}",
                    "{total / 60:02d}",
                    name="past_midnight",
                    test='assert __fn__("23:50", 20) == "00:10"',
                    title="`__fn__` crashes",
                    symptom="Adding minutes to a time fails instead of returning the new time.",
                ),
                B(
                    "missing_normalisation",
                    "total = (hours * 60 + mins + minutes) % (24 * 60)",
                    "total = hours * 60 + mins + minutes",
                    name="wraps_midnight",
                    test='assert __fn__("23:50", 20) == "00:10"',
                    title="`__fn__` goes past midnight",
                    symptom="Times after midnight come out as 24:xx or later instead of wrapping around.",
                ),
            ],
        ),
        S(
            "count_recent",
            ("count_recent", "events_in_window", "recent_count"),
            r'''
def __fn__(timestamps, now, window):
    """How many timestamps lie in the last `window` seconds: the interval (now - window, now]."""
    return sum(1 for ts in timestamps if now - window < ts <= now)
''',
            [("none", "assert __fn__([], 10, 5) == 0"), ("recent", "assert __fn__([9, 10], 10, 5) == 2")],
            [
                B(
                    "boundary_condition",
                    "now - window < ts",
                    "now - window <= ts",
                    name="window_start_excluded",
                    test="assert __fn__([5, 6, 10], 10, 5) == 2",
                    title="`__fn__` counts an event that is too old",
                    symptom="An event exactly `window` seconds old is counted, which makes our rate limiter too strict.",
                ),
                B(
                    "boundary_condition",
                    "ts <= now",
                    "ts < now",
                    name="now_included",
                    test="assert __fn__([5, 6, 10], 10, 5) == 2",
                    title="`__fn__` misses the event happening right now",
                    symptom="An event whose timestamp equals `now` is not counted.",
                ),
            ],
        ),
    ),
)

GEOMETRY = Theme(
    "geometry",
    ("geometry", "shapes", "vectors", "planar"),
    "2-D points, rectangles and polygons.",
    (
        S(
            "midpoint",
            ("midpoint", "center_of", "halfway"),
            r'''
def __fn__(p, q):
    """Midpoint of the segment from p to q (2-D tuples)."""
    return ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)
''',
            [("even", "assert __fn__((0, 0), (2, 4)) == (1, 2)")],
            [
                B(
                    "int_division",
                    "(p[0] + q[0]) / 2",
                    "(p[0] + q[0]) // 2",
                    name="fractional",
                    test="assert __fn__((0, 0), (3, 5)) == (1.5, 2.5)",
                    title="`__fn__` rounds the x coordinate",
                    symptom="For points with an odd sum of x coordinates the midpoint is off by half a unit.",
                ),
                B(
                    "swapped_operator",
                    "(p[1] + q[1])",
                    "(p[1] - q[1])",
                    name="y_coordinate",
                    test="assert __fn__((1, 1), (3, 5)) == (2, 3)",
                    title="`__fn__` gives a wrong y coordinate",
                    symptom="The y coordinate of the midpoint is wrong, even negative for points above the origin.",
                ),
                B(
                    "wrong_variable",
                    "(p[1] + q[1])",
                    "(p[1] + q[0])",
                    name="uses_both_y",
                    test="assert __fn__((1, 1), (3, 5)) == (2, 3)",
                    title="`__fn__` y coordinate is wrong",
                    symptom="The y coordinate of the midpoint does not lie between the two points.",
                ),
            ],
        ),
        S(
            "bounding_box",
            ("bounding_box", "bbox", "extent"),
            r'''
def __fn__(points):
    """(min_x, min_y, max_x, max_y) of a non-empty collection of points."""
    points = list(points)
    if not points:
        raise ValueError("no points")
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    return (min(xs), min(ys), max(xs), max(ys))
''',
            [
                ("single", "assert __fn__([(1, 2)]) == (1, 2, 1, 2)"),
                ("empty", "with pytest.raises(ValueError):\n    __fn__([])"),
            ],
            [
                B(
                    "wrong_variable",
                    "(min(xs), min(ys),",
                    "(min(xs), min(xs),",
                    name="two_points",
                    test="assert __fn__([(0, 5), (4, 1)]) == (0, 1, 4, 5)",
                    title="`__fn__` returns the wrong lower edge",
                    symptom="The box does not contain all the points: its bottom edge is wrong.",
                ),
                B(
                    "wrong_builtin",
                    "max(ys))",
                    "min(ys))",
                    name="top_edge",
                    test="assert __fn__([(0, 5), (4, 1)]) == (0, 1, 4, 5)",
                    title="`__fn__` box is too flat",
                    symptom="The returned box is not tall enough to contain the points.",
                ),
                B(
                    "wrong_exception",
                    'raise ValueError("no points")',
                    'raise IndexError("no points")',
                    name="empty_is_value_error",
                    test="with pytest.raises(ValueError):\n    __fn__(iter([]))",
                    title="`__fn__` of no points raises IndexError",
                    symptom="An empty input is documented to raise ValueError, which our callers handle.",
                ),
            ],
        ),
        S(
            "contains_point",
            ("contains_point", "in_rect", "point_in_rect"),
            r'''
def __fn__(rect, point):
    """Whether `point` lies inside or on the border of rect = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = rect
    x, y = point
    return x0 <= x <= x1 and y0 <= y <= y1
''',
            [
                ("inside", "assert __fn__((0, 0, 4, 4), (2, 2)) is True"),
                ("outside", "assert __fn__((0, 0, 4, 4), (5, 1)) is False"),
            ],
            [
                B(
                    "boundary_condition",
                    "x0 <= x <= x1",
                    "x0 < x < x1",
                    name="on_border",
                    test="assert __fn__((0, 0, 4, 4), (4, 0)) is True",
                    title="`__fn__` excludes points on the border",
                    symptom="Points on the left or right edge of the rectangle are reported as outside.",
                ),
                B(
                    "wrong_variable",
                    "y0 <= y <= y1",
                    "y0 <= x <= y1",
                    name="wide_rect",
                    test="assert __fn__((0, 0, 10, 2), (5, 1)) is True",
                    title="`__fn__` is wrong for wide rectangles",
                    symptom="Points clearly inside a rectangle that is wider than it is tall are reported as outside.",
                ),
            ],
        ),
        S(
            "perimeter",
            ("perimeter", "polygon_perimeter", "outline_length"),
            r'''
def __fn__(points):
    """Length of the closed polygon through `points` (the last point joins the first)."""
    total = 0.0
    for i in range(len(points)):
        (x1, y1), (x2, y2) = points[i], points[(i + 1) % len(points)]
        total += math.hypot(x2 - x1, y2 - y1)
    return total
''',
            [("empty", "assert __fn__([]) == 0.0")],
            [
                B(
                    "off_by_one",
                    "for i in range(len(points)):",
                    "for i in range(len(points) - 1):",
                    name="triangle",
                    test="assert __fn__([(0, 0), (3, 0), (3, 4)]) == 12.0",
                    title="`__fn__` forgets the closing edge",
                    symptom="The perimeter of a triangle is shorter than the sum of its sides.",
                ),
                B(
                    "swapped_operator",
                    "x2 - x1",
                    "x2 + x1",
                    name="right_triangle",
                    test="assert __fn__([(0, 0), (3, 0), (3, 4)]) == 12.0",
                    title="`__fn__` is too long for shapes away from the origin",
                    symptom="The perimeter is wrong as soon as the points have non-zero x coordinates.",
                ),
            ],
            imports=["math"],
        ),
        S(
            "scale_size",
            ("scale_size", "scaled", "resize"),
            r'''
def __fn__(size, factor, minimum=1):
    """Scale a (width, height) pair by `factor`, rounding, never going below `minimum`."""
    width, height = size
    return (max(minimum, round(width * factor)), max(minimum, round(height * factor)))
''',
            [("identity", "assert __fn__((4, 4), 1) == (4, 4)")],
            [
                B(
                    "wrong_default",
                    "minimum=1",
                    "minimum=0",
                    name="never_zero",
                    test="assert __fn__((10, 1), 0.1) == (1, 1)",
                    title="`__fn__` can return zero-sized images",
                    symptom="Shrinking a thin image gives a height of 0, which the docs say cannot happen by default.",
                ),
                B(
                    "wrong_builtin",
                    "(max(minimum, round(width * factor))",
                    "(min(minimum, round(width * factor))",
                    name="double",
                    test="assert __fn__((10, 20), 2) == (20, 40)",
                    title="`__fn__` returns width 1",
                    symptom="Whatever the factor, the scaled width is 1.",
                ),
                B(
                    "wrong_variable",
                    "round(height * factor)",
                    "round(width * factor)",
                    name="keeps_aspect",
                    test="assert __fn__((10, 20), 2) == (20, 40)",
                    title="`__fn__` makes everything square",
                    symptom="The scaled height does not depend on the original height.",
                ),
            ],
        ),
    ),
)

PATHS = Theme(
    "paths",
    ("paths", "urls", "naming", "fileutil"),
    "File names, URLs, query strings and version strings.",
    (
        S(
            "split_ext",
            ("split_ext", "split_extension", "extension_of"),
            r'''
def __fn__(filename):
    """Split 'archive.tar.gz' into ('archive.tar', 'gz'); dotfiles like '.bashrc' have none."""
    stem, dot, ext = filename.rpartition(".")
    if not dot or not stem:
        return filename, ""
    return stem, ext
''',
            [
                ("simple", 'assert __fn__("notes.txt") == ("notes", "txt")'),
                ("none", 'assert __fn__("README") == ("README", "")'),
            ],
            [
                B(
                    "wrong_builtin",
                    "filename.rpartition(",
                    "filename.partition(",
                    name="double_extension",
                    test='assert __fn__("archive.tar.gz") == ("archive.tar", "gz")',
                    title="`__fn__` is wrong for names with several dots",
                    symptom="Only the last extension should be split off, but names with more than one dot come back wrong.",
                ),
            ],
        ),
        S(
            "parse_query",
            ("parse_query", "query_params", "parse_qs_simple"),
            r'''
def __fn__(query):
    """Parse 'a=1&b=two' into a dict; a leading '?' is ignored; None or '' give {}."""
    if not query:
        return {}
    params = {}
    for pair in query.lstrip("?").split("&"):
        key, _, value = pair.partition("=")
        if key:
            params[key] = value
    return params
''',
            [("two", 'assert __fn__("a=1&b=two") == {"a": "1", "b": "two"}')],
            [
                B(
                    "missing_none_guard",
                    "    if not query:\n        return {}\n",
                    "",
                    name="none",
                    test="assert __fn__(None) == {}",
                    title="`__fn__` crashes for URLs without a query",
                    symptom="URLs that have no query string give us None, and the docstring says that is fine.",
                ),
                B(
                    "missing_normalisation",
                    'query.lstrip("?")',
                    "query",
                    name="leading_question_mark",
                    test='assert __fn__("?page=2") == {"page": "2"}',
                    title="`__fn__` mangles the first parameter",
                    symptom="When the query string starts with '?', the first parameter gets the wrong name.",
                ),
            ],
        ),
        S(
            "join_url",
            ("join_url", "url_join", "join_path"),
            r'''
def __fn__(base, *parts):
    """Join URL pieces with exactly one '/' between them."""
    url = base.rstrip("/")
    for part in parts:
        url += "/" + part.strip("/")
    return url
''',
            [
                ("base_only", 'assert __fn__("http://x") == "http://x"'),
                ("one_part", 'assert __fn__("http://x", "a") == "http://x/a"'),
            ],
            [
                B(
                    "missing_normalisation",
                    'part.strip("/")',
                    "part",
                    name="slashes",
                    test='assert __fn__("http://x/", "/api/", "v1") == "http://x/api/v1"',
                    title="`__fn__` produces double slashes",
                    symptom="Parts that start or end with a slash give URLs with '//' in the path, which our server rejects.",
                ),
            ],
        ),
        S(
            "sort_versions",
            ("sort_versions", "sorted_versions", "order_versions"),
            r'''
def __fn__(versions, newest_first=False):
    """Sort version strings like '1.10.0' numerically, oldest first unless `newest_first`."""
    return sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")), reverse=newest_first)
''',
            [("empty", "assert __fn__([]) == []")],
            [
                B(
                    "missing_normalisation",
                    "tuple(int(p) for p in",
                    "tuple(p for p in",
                    name="numeric_order",
                    test='assert __fn__(["1.10.0", "1.9.2", "1.2.0"]) == ["1.2.0", "1.9.2", "1.10.0"]',
                    title="`__fn__` puts 1.10 before 1.9",
                    symptom="Versions with two-digit parts are ordered wrongly.",
                ),
                B(
                    "wrong_default",
                    "newest_first=False",
                    "newest_first=True",
                    name="oldest_first_default",
                    test='assert __fn__(["2.0", "1.0"]) == ["1.0", "2.0"]',
                    title="`__fn__` sorts newest first by default",
                    symptom="The docstring says oldest first unless asked otherwise.",
                ),
                B(
                    "wrong_sort_order",
                    "reverse=newest_first",
                    "reverse=not newest_first",
                    name="newest_first_flag",
                    test='assert __fn__(["1.0", "3.0", "2.0"], newest_first=True) == ["3.0", "2.0", "1.0"]',
                    title="`__fn__` ignores `newest_first`",
                    symptom="Asking for the newest version first gives the oldest first.",
                ),
            ],
        ),
        S(
            "safe_filename",
            ("safe_filename", "sanitize_filename", "clean_name"),
            r'''
def __fn__(name, replacement="_", max_length=64):
    """Replace characters that are unsafe in file names and cap the length."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", replacement, name.strip())
    return cleaned[:max_length] or replacement
''',
            [("spaces", 'assert __fn__("my file.txt") == "my_file.txt"')],
            [
                B(
                    "wrong_default",
                    "max_length=64",
                    "max_length=16",
                    name="long_names_kept",
                    test='assert len(__fn__("a" * 40)) == 40',
                    title="`__fn__` truncates ordinary file names",
                    symptom="Names well below the documented limit of 64 characters are cut short.",
                ),
                B(
                    "off_by_one",
                    "cleaned[:max_length]",
                    "cleaned[: max_length - 1]",
                    name="exact_limit",
                    test='assert __fn__("abcdef", max_length=4) == "abcd"',
                    title="`__fn__` cuts one character too many",
                    symptom="With `max_length=N` the result has fewer than N characters.",
                ),
            ],
            imports=["re"],
        ),
    ),
)

JOBS = Theme(
    "jobs",
    ("jobs", "scheduler", "queueing", "worker"),
    "Job records, priorities, retries and schedules.",
    (
        S(
            "backoff_delays",
            ("backoff_delays", "retry_delays", "backoff"),
            r'''
def __fn__(attempts, base=0.5, factor=2.0, cap=30.0):
    """Delays before each retry: base, base*factor, base*factor**2, ..., each at most `cap`."""
    return [min(cap, base * factor**i) for i in range(attempts)]
''',
            [("none", "assert __fn__(0) == []")],
            [
                B(
                    "swapped_operator",
                    "factor**i",
                    "i**factor",
                    name="doubling",
                    test="assert __fn__(4) == [0.5, 1.0, 2.0, 4.0]",
                    title="`__fn__` does not grow exponentially",
                    symptom="The first delay is zero and later delays do not double.",
                ),
                B(
                    "off_by_one",
                    "range(attempts)",
                    "range(1, attempts)",
                    name="one_per_attempt",
                    test="assert __fn__(3, base=1.0) == [1.0, 2.0, 4.0]",
                    title="`__fn__` returns too few delays",
                    symptom="Asking for N attempts gives N-1 delays and skips the base delay.",
                ),
                B(
                    "wrong_builtin",
                    "min(cap,",
                    "max(cap,",
                    name="capped",
                    test="assert __fn__(2, base=1.0, cap=10.0) == [1.0, 2.0]",
                    title="`__fn__` waits far too long",
                    symptom="Every delay is at least `cap` seconds, even the first retry.",
                ),
            ],
        ),
        S(
            "by_priority",
            ("by_priority", "order_jobs", "schedule_order"),
            r'''
def __fn__(jobs):
    """Order jobs (dicts with 'name' and 'priority') by descending priority, then by name."""
    return sorted(jobs, key=lambda job: (-job["priority"], job["name"]))
''',
            [("empty", "assert __fn__([]) == []")],
            [
                B(
                    "wrong_sort_order",
                    '-job["priority"]',
                    'job["priority"]',
                    name="high_priority_first",
                    test='jobs = [{"name": "b", "priority": 1}, {"name": "a", "priority": 5}, {"name": "c", "priority": 5}]\nassert [j["name"] for j in __fn__(jobs)] == ["a", "c", "b"]',
                    title="`__fn__` runs low-priority jobs first",
                    symptom="Jobs with the highest priority end up at the end of the queue.",
                ),
                B(
                    "wrong_dict_key",
                    'job["name"])',
                    'job["id"])',
                    name="ties_by_name",
                    test='jobs = [{"name": "b", "priority": 1}, {"name": "a", "priority": 1}]\nassert [j["name"] for j in __fn__(jobs)] == ["a", "b"]',
                    title="`__fn__` crashes when two jobs have the same priority",
                    symptom="Job records only have 'name' and 'priority', and ordering jobs with equal priorities fails.",
                ),
            ],
        ),
        S(
            "new_job",
            ("new_job", "make_job", "job_record"),
            r'''
def __fn__(name, tags=None, priority=0):
    """Create a job record; every job gets its own list of tags."""
    return {"name": name, "priority": priority, "tags": list(tags) if tags else []}
''',
            [("with_tags", 'assert __fn__("a", ["x"], 2) == {"name": "a", "priority": 2, "tags": ["x"]}')],
            [
                B(
                    "mutable_default",
                    [("tags=None, priority", "tags=[], priority"), ("list(tags) if tags else []", "tags")],
                    name="tags_not_shared",
                    test='first = __fn__("a")\nsecond = __fn__("b")\nfirst["tags"].append("urgent")\nassert second["tags"] == []',
                    title="Tags added to one job appear on other jobs",
                    symptom="After tagging one job created without tags, other jobs show the same tag.",
                ),
                B(
                    "wrong_default",
                    "priority=0",
                    "priority=1",
                    name="default_priority",
                    test='assert __fn__("x")["priority"] == 0',
                    title="`__fn__` gives new jobs priority 1",
                    symptom="Jobs created without a priority should have the neutral priority 0.",
                ),
            ],
        ),
        S(
            "next_run",
            ("next_run", "next_tick", "following_run"),
            r'''
def __fn__(start, interval, now):
    """First time start + k * interval (k >= 0) that is strictly after `now`, or `start` if later."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    if now < start:
        return start
    elapsed = now - start
    return start + (elapsed // interval + 1) * interval
''',
            [
                ("before_start", "assert __fn__(100, 10, 50) == 100"),
                ("bad_interval", "with pytest.raises(ValueError):\n    __fn__(0, 0, 5)"),
            ],
            [
                B(
                    "boundary_condition",
                    "if now < start:",
                    "if now <= start:",
                    name="exactly_at_start",
                    test="assert __fn__(100, 10, 100) == 110",
                    title="`__fn__` schedules a run in the past",
                    symptom="At the exact start time the next run should be one interval later, not now.",
                ),
                B(
                    "int_division",
                    "elapsed // interval",
                    "elapsed / interval",
                    name="between_ticks",
                    test="assert __fn__(0, 10, 25) == 30",
                    title="`__fn__` returns times off the schedule",
                    symptom="Between two runs, the next run time is not a multiple of the interval after the start.",
                ),
                B(
                    "wrong_exception",
                    'raise ValueError("interval',
                    'raise RuntimeError("interval',
                    name="negative_interval",
                    test='with pytest.raises(ValueError, match="positive"):\n    __fn__(0, -5, 1)',
                    title="`__fn__` raises RuntimeError for a bad interval",
                    symptom="A non-positive interval is an invalid argument and should raise ValueError.",
                ),
            ],
        ),
        S(
            "job_errors",
            ("job_errors", "validate_job", "check_job"),
            r'''
def __fn__(job, errors=None):
    """List the problems of a job record, appended to `errors` when a list is given."""
    if errors is None:
        errors = []
    if not job.get("name"):
        errors.append("missing name")
    if job.get("priority", 0) < 0:
        errors.append("negative priority")
    return errors
''',
            [("collects_into", 'errs = ["x"]\n__fn__({}, errs)\nassert errs == ["x", "missing name"]')],
            [
                B(
                    "mutable_default",
                    [("errors=None):", "errors=[]):"), ("    if errors is None:\n        errors = []\n", "")],
                    name="independent_calls",
                    test='assert __fn__({"priority": 1}) == ["missing name"]\nassert __fn__({"name": "ok"}) == []',
                    title="`__fn__` reports errors of other jobs",
                    symptom="Validating a correct job reports problems that belonged to a job validated earlier.",
                ),
                B(
                    "inverted_condition",
                    'if not job.get("name"):',
                    'if job.get("name"):',
                    name="named_job",
                    test='assert __fn__({"name": "a", "priority": -1}) == ["negative priority"]',
                    title="`__fn__` complains about jobs that have a name",
                    symptom="Jobs that do have a name are reported as missing one, and unnamed jobs pass.",
                ),
            ],
        ),
    ),
)

THEMES: tuple[Theme, ...] = (TEXT, STATS, SEQS, CONFIG, ORDERS, TIME, GEOMETRY, PATHS, JOBS)

TEST_FAMILIES = ("early_return", "mutable_default", "swapped_arguments")
"""Bug families held out of the train split (every task of these families is a test task)."""


def apply_bug(code: str, bug: Bug) -> str:
    for old, new in bug.edits:
        if code.count(old) != 1:
            raise ValueError(f"bug edit {old!r} must occur exactly once (found {code.count(old)})")
        code = code.replace(old, new)
    return code
