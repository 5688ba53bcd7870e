"""The Gradio workbench: one module per tab, composed in ``workbench.app``."""
