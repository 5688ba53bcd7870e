"""Reusable UI pieces (HTML, plotly figures, frames) that know nothing about pipelines."""
