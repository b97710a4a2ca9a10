"""Unit tests of provider.py's `Value` <-> Python conversion, for every kind of type.

Run: .venv/bin/python -m unittest discover -s examples/python-provider
(crates/orrery-test-harness/tests/python_provider.rs runs them in CI).
"""

import unittest

from provider import (
    BOOL,
    FLOAT,
    INT,
    INT_MAX,
    INT_MIN,
    STRING,
    TypeMismatch,
    from_value,
    list_of,
    map_of,
    optional,
    product,
    to_value,
    union,
)

EVERY_KIND = product(
    name=STRING,
    count=INT,
    ratio=FLOAT,
    ok=BOOL,
    tags=list_of(STRING),
    scores=map_of(INT, list_of(FLOAT)),
    result=union(value=INT, failure=product(reason=STRING)),
    note=optional(STRING),
)


class RoundTrips(unittest.TestCase):
    def assert_round_trip(self, python, schema):
        value = to_value(python, schema, "v")
        self.assertEqual(from_value(value, schema, "v"), python)
        # ... and through the wire bytes.
        again = type(value).FromString(value.SerializeToString())
        self.assertEqual(from_value(again, schema, "v"), python)

    def test_every_kind_nested_in_one_product(self):
        python = {
            "name": "Ada",
            "count": INT_MIN,
            "ratio": 0.5,
            "ok": False,
            "tags": ["a", ""],
            "scores": {3: [1.0, -2.5], -1: []},
            "result": ("failure", {"reason": "none"}),
            "note": None,
        }
        self.assert_round_trip(python, EVERY_KIND)
        python.update(result=("value", INT_MAX), note="kept")
        self.assert_round_trip(python, EVERY_KIND)

    def test_product_fields_keep_the_declared_order(self):
        schema = product(b=INT, a=INT)
        value = to_value({"a": 1, "b": 2}, schema, "v")
        self.assertEqual([f.name for f in value.product_value.fields], ["b", "a"])

    def test_float_accepts_an_int(self):
        self.assertEqual(to_value(3, FLOAT, "v").float_value, 3.0)


class Mismatches(unittest.TestCase):
    def assert_refused(self, python, schema, where):
        with self.assertRaises(TypeMismatch) as refused:
            to_value(python, schema, "output")
        self.assertIn(where, str(refused.exception))

    def test_bool_is_not_an_int_and_int_is_not_a_bool(self):
        self.assert_refused(True, INT, "output: expected Int, got bool")
        self.assert_refused(1, BOOL, "output: expected Bool, got int")

    def test_ints_past_64_bits(self):
        self.assert_refused(INT_MAX + 1, INT, "does not fit a 64-bit Int")
        self.assert_refused(INT_MIN - 1, INT, "does not fit a 64-bit Int")

    def test_paths_point_into_nested_values(self):
        self.assert_refused(["a", 2], list_of(STRING), "output[1]: expected String")
        self.assert_refused({"x": "1"}, product(x=INT), "output.x: expected Int")
        self.assert_refused({"x": 1, "y": 2}, product(x=INT), "expected fields ['x']")
        self.assert_refused(("other", 1), union(value=INT), "a variant of ['value']")

    def test_a_value_of_the_wrong_kind_is_refused_on_input(self):
        value = to_value("text", STRING, "v")
        with self.assertRaises(TypeMismatch) as refused:
            from_value(value, list_of(STRING), "input")
        self.assertEqual(str(refused.exception), "input: expected a List, got string_value")

    def test_a_product_with_other_fields_is_refused_on_input(self):
        value = to_value({"a": 1}, product(a=INT), "v")
        with self.assertRaises(TypeMismatch) as refused:
            from_value(value, product(a=INT, b=INT), "input")
        self.assertIn("expected fields ['a', 'b'], got ['a']", str(refused.exception))


if __name__ == "__main__":
    unittest.main()
