import pytest

from tests.builders import Book


@pytest.fixture
def book(db):
    return Book()
