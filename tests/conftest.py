"""Fixtures shared across test folders: a live server and a recorded browser page."""

pytest_plugins = ["tests.browser.plugin"]
