"""Wiring `journal` into agent frameworks, one module per framework.

Each module imports its framework lazily, inside its functions, so `import journal` (and
`import journal.integrations`) never imports a framework; install the framework with the
extra of the same name, e.g. ``pip install 'journal[praisonai]'`` for `journal.integrations.praisonai`.
"""
