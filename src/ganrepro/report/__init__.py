"""Rendering reports/: Markdown pages, CSV tables and PNG figures from the DVC metric files."""
