"""imgclf.errors and the public API surface."""

from __future__ import annotations

import pytest

import imgclf
from imgclf.errors import ConfigError, DataError, ImgclfError, ModelError, invalid_value


def test_hierarchy():
    for cls in (ConfigError, DataError, ModelError):
        assert issubclass(cls, ImgclfError)
    assert issubclass(
        ConfigError, ValueError
    )  # a bad option is a bad value, for `except ValueError` callers too
    assert not issubclass(DataError, ValueError)


def test_invalid_value_message_format():
    err = invalid_value("rate", 1.5, "a number in [0, 1)")
    assert isinstance(err, ConfigError)
    assert str(err) == "invalid value for `rate`: received 1.5; expected a number in [0, 1)"
    assert (
        str(invalid_value("name", "a/b", "x"))
        == "invalid value for `name`: received 'a/b'; expected x"
    )


@pytest.mark.parametrize("name", imgclf.__all__)
def test_public_names_exist(name):
    assert getattr(imgclf, name) is not None


def test_public_errors_are_the_package_errors():
    assert imgclf.ImgclfError is ImgclfError and imgclf.DataError is DataError
    from importlib.metadata import version

    assert imgclf.__version__ == version("imgclf")
