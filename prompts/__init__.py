"""Prompt templates as files: one per purpose under prompts/<agent>/, front matter plus Jinja2.

Shipped as package data, so `importlib.resources.files("codirector.prompts")` finds them in any install.
"""
